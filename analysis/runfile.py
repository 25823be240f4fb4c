"""runfile.py — the one reader of uniprefill-bench run files, shared by summarize.py,
figures.py and compare.py: it opens a file, checks that it is a run of a schema version
these scripts understand, and hands back the root attributes, the /summary rows, the
per-point groups (parameters, request and step tables, per-layer token counts, ragged
output-token times), for `--kernels` runs the /kernels rows, and for `--eval` runs the
/eval_samples and /eval_summary rows and the /eval_layer_rows matrices, as plain Python
and numpy values. Files without the kernel or eval tables read with those parts empty.

Owns reading and validation only; the schema is written by launcher/output/results_h5.c and
documented in results/README.md. Computes no metric. Needs h5py and numpy (Debian's
/usr/bin/python3 has both).
"""
import os

import h5py
import numpy as np

# Versions whose layout these scripts read. Version 2 adds the serving-metric summary
# fields and each point's token_times / token_offsets; a version-1 file reads the same
# way without them (Point.token_times is None, summary rows lack the new fields).
SUPPORTED_SCHEMA_VERSIONS = (1, 2)

# Root attributes worth showing a reader, in display order.
ROOT_ATTRS = ("tool", "tool_version", "git_commit", "model", "backend", "world_size",
              "device_names", "hostnames", "library_versions", "started_utc", "argv")

# request.status of a request that produced all its output (engine/serve/request.h).
STATUS_FINISHED = 2


# The workload attribute of a closed-loop point (launcher/sweep/workload_plan.c writes it).
CLOSED_LOOP = "closed-loop"

class RunFileError(Exception):
    """The file is missing, not HDF5, not a uniprefill-bench run, or of an unknown
    schema version; the message names the path."""


def as_text(value):
    """Attributes are str from h5py; fixed-length strings (table fields) are bytes."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", "replace").rstrip("\0")
    if isinstance(value, np.ndarray) and value.shape == ():
        return as_text(value[()])
    return str(value)


def _plain(value):
    """A numpy scalar or string as the matching Python value."""
    if isinstance(value, (bytes, np.bytes_, str)):
        return as_text(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class Point:
    """One /points/NNNN group: its parameters (attrs, plus the common ones as
    attributes), its tables as numpy structured arrays and its per-layer counts.
    workload is the point's `workload` attribute; runs written before that attribute
    existed were all closed-loop sweeps, so its absence reads as CLOSED_LOOP."""

    def __init__(self, group):
        self.attrs = {name: _plain(group.attrs[name]) for name in group.attrs}
        self.index = int(self.attrs.get("index", int(group.name.rsplit("/", 1)[-1])))
        self.method = str(self.attrs.get("method", ""))
        self.ctx = int(self.attrs.get("ctx", 0))
        self.concurrency = int(self.attrs.get("concurrency", 0))
        self.output_len = int(self.attrs.get("output_len", 0))
        self.workload = str(self.attrs.get("workload", CLOSED_LOOP))
        self.requests = group["requests"][...] if "requests" in group else None
        self.steps = group["steps"][...] if "steps" in group else None
        self.request_layer_tokens = (group["request_layer_tokens"][...]
                                     if "request_layer_tokens" in group else None)
        if "token_times" in group and "token_offsets" in group:
            self.token_times = group["token_times"][...]
            self.token_offsets = group["token_offsets"][...]
        else:
            self.token_times = self.token_offsets = None

    def key(self):
        """The parameters that identify a point across runs."""
        return (self.method, self.ctx, self.concurrency, self.output_len, self.workload)

    def ok_mask(self):
        """Boolean mask of the requests that finished (failures are never timed)."""
        if self.requests is None or len(self.requests) == 0:
            return np.zeros(0, dtype=bool)
        return self.requests["status"] == STATUS_FINISHED


class EvalTables:
    """The tables of an `--eval` run: samples (list of dicts, one per /eval_samples row:
    a method's answer to one prompt), summary (list of dicts, one per /eval_summary row:
    a method, context and task, or task "all"), and layer_rows (int array
    [len(samples)][n_layers], prompt rows entering each layer, row i belonging to
    samples[i]; None when the file has no /eval_layer_rows). Empty for other runs."""

    def __init__(self, samples=(), summary=(), layer_rows=None):
        self.samples = list(samples)
        self.summary = list(summary)
        self.layer_rows = layer_rows

    def __bool__(self):
        return bool(self.samples or self.summary)


class Run:
    """A whole run file read into memory: path, name (file stem), schema_version,
    attrs (root attributes as text), summary_fields (the /summary field names in file
    order), summary (list of dicts, one per /summary row, each with the point's
    workload added under "workload"), points (list of Point, in index order),
    kernel_fields and kernels (the /kernels field names and rows as dicts; empty for a
    sweep, which has no /kernels table), kernel_attrs (the table's attributes) and
    eval (EvalTables; false for a run without --eval, whose /summary is then the one
    with rows: an --eval run leaves /summary and /points empty)."""

    def __init__(self, path, schema_version, attrs, summary_fields, summary, points,
                 kernel_fields=(), kernels=(), kernel_attrs=None, eval_tables=None):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.schema_version = schema_version
        self.attrs = attrs
        self.summary_fields = summary_fields
        self.summary = summary
        self.points = points
        self.kernel_fields = tuple(kernel_fields)
        self.kernels = list(kernels)
        self.kernel_attrs = kernel_attrs or {}
        self.eval = eval_tables if eval_tables is not None else EvalTables()

    def caption(self):
        """One line naming what produced the run: model, device, commit."""
        devices = sorted(set(self.attrs.get("device_names", "?").split(",")))
        return (f"{self.name}: model {self.attrs.get('model', '?')}, "
                f"device {' + '.join(devices)}, commit {self.attrs.get('git_commit', '?')}")


def _table_rows(dataset):
    """A compound table as a list of dicts of plain values."""
    table = dataset[...]
    return [{name: _plain(row[name]) for name in table.dtype.names} for row in table]


def _read_eval(f, path):
    """The --eval tables, or an empty EvalTables when the file has none. The
    /eval_layer_rows datasets (one per context, in name order) stack into one matrix
    whose rows pair with /eval_samples' rows; counts that disagree are an error."""
    if "eval_samples" not in f and "eval_summary" not in f:
        return EvalTables()
    samples = _table_rows(f["eval_samples"]) if "eval_samples" in f else []
    summary = _table_rows(f["eval_summary"]) if "eval_summary" in f else []
    layer_rows = None
    if "eval_layer_rows" in f and len(f["eval_layer_rows"]) > 0:
        group = f["eval_layer_rows"]
        layer_rows = np.concatenate([group[name][...] for name in sorted(group)], axis=0)
        if layer_rows.shape[0] != len(samples):
            raise RunFileError(f"'{path}': /eval_layer_rows has {layer_rows.shape[0]} rows but /eval_samples "
                               f"has {len(samples)}; they must pair one to one")
    return EvalTables(samples, summary, layer_rows)


def load_run(path, with_points=True):
    """Read a run file; raises RunFileError on anything that is not a readable run of
    a supported schema version. with_points=False skips the per-point groups."""
    if not os.path.isfile(path):
        raise RunFileError(f"'{path}': no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise RunFileError(f"'{path}': cannot read as HDF5: {exc}") from exc
    with f:
        if "schema_version" not in f.attrs:
            raise RunFileError(f"'{path}' is not a uniprefill-bench run (no schema_version attribute)")
        version = int(f.attrs["schema_version"])
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            raise RunFileError(f"'{path}' has schema_version {version}; these scripts read "
                               f"{', '.join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)}")
        if "summary" not in f:
            raise RunFileError(f"'{path}' has no /summary table")
        attrs = {name: as_text(f.attrs[name]) for name in f.attrs}
        table = f["summary"][...]
        groups = f["points"] if "points" in f else {}
        points = [Point(groups[name]) for name in sorted(groups)] if with_points else []
        # Workloads are cheap attributes: read them even without the points.
        workloads = {int(name): (as_text(groups[name].attrs["workload"])
                                 if "workload" in groups[name].attrs else CLOSED_LOOP)
                     for name in groups}
        summary = []
        for row in table:
            entry = {name: _plain(row[name]) for name in table.dtype.names}
            entry["workload"] = workloads.get(int(entry["point_index"]), CLOSED_LOOP)
            summary.append(entry)
        kernel_fields, kernels, kernel_attrs = (), [], {}
        if "kernels" in f:
            kernel_fields = f["kernels"].dtype.names
            kernels = _table_rows(f["kernels"])
            kernel_attrs = {name: _plain(f["kernels"].attrs[name]) for name in f["kernels"].attrs
                            if not name.startswith("FIELD_") and name not in ("CLASS", "VERSION", "TITLE")}
        return Run(path, version, attrs, tuple(table.dtype.names), summary, points,
                   kernel_fields, kernels, kernel_attrs, _read_eval(f, path))

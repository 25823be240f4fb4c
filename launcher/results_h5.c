/* results_h5.c — writes the HDF5 run file described in results/README.md: root
 * attributes, one group per sweep point (parameter attributes, request and step tables,
 * per-layer token datasets) and the appendable /summary table. Owns the mapping from the
 * record structs to HDF5 compound types; it never computes metrics (point_summary.c
 * does) and never talks MPI (only rank 0 calls it). Every HDF5 call is checked and a
 * failure becomes a message naming the file, the object and HDF5's own cause. */
#include "launcher/results_h5.h"

#include <hdf5.h>
#include <hdf5_hl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fatal.h"

/* Enough for the widest record (up_point_summary has 15 members). */
#define UP_TABLE_MAX_FIELDS 24
/* Records per chunk of the per-point tables: large enough to keep chunk overhead low
 * for thousands of requests, small enough not to bloat tiny points. */
#define UP_TABLE_CHUNK_RECORDS 1024
/* /summary grows one row per point; a sweep has tens to hundreds of points. */
#define UP_SUMMARY_CHUNK_RECORDS 64

/* A record struct described as an H5TB table: names, offsets and sizes from the C
 * struct, HDF5 member types owned (copied) so they can all be closed the same way. */
typedef struct up_table_layout {
  const char *title;
  size_t n_fields;
  size_t record_size;
  const char *names[UP_TABLE_MAX_FIELDS];
  size_t offsets[UP_TABLE_MAX_FIELDS];
  size_t sizes[UP_TABLE_MAX_FIELDS];
  hid_t types[UP_TABLE_MAX_FIELDS];
} up_table_layout;

struct up_results_file {
  char *path;
  hid_t file;
  hid_t points; /* the /points group */
  hsize_t n_summary_rows;
  up_table_layout summary_layout;
  up_table_layout request_layout;
  up_table_layout step_layout;
};

/* Where a failure is reported: the file's path names it in every message. */
typedef struct up_h5_err {
  const char *path;
  char *buf;
  size_t size;
} up_h5_err;

/* ---- error reporting -------------------------------------------------------- */

/* H5E_WALK_UPWARD visits the innermost error first: the place that detected the
 * problem, whose description carries the useful detail (errno text, names). */
static herr_t up_h5_first_error(unsigned n, const H5E_error2_t *desc, void *client) {
  char *cause = client;
  if (n == 0 && desc->desc != NULL && desc->desc[0] != '\0') {
    snprintf(cause, 512, "%s (in %s)", desc->desc, desc->func_name ? desc->func_name : "?");
  }
  return 0;
}

/* Set the message "results file 'PATH': WHAT: CAUSE" from HDF5's error stack. */
static void up_h5_fail(const up_h5_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void up_h5_fail(const up_h5_err *e, const char *fmt, ...) {
  if (e->buf == NULL || e->size == 0) return;
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  char cause[512] = "no detail from HDF5";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, up_h5_first_error, cause);
  H5Eclear2(H5E_DEFAULT);
  snprintf(e->buf, e->size, "results file '%s': %s: %s", e->path, what, cause);
}

/* A failure found by this file (bad arguments), not by HDF5. */
static void up_h5_fail_plain(const up_h5_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void up_h5_fail_plain(const up_h5_err *e, const char *fmt, ...) {
  if (e->buf == NULL || e->size == 0) return;
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(e->buf, e->size, "results file '%s': %s", e->path, what);
}

/* ---- table layouts ---------------------------------------------------------- */

static int up_layout_add(up_table_layout *l, const char *name, size_t offset, size_t size, hid_t native,
                         const up_h5_err *e) {
  UP_ASSERT(l->n_fields < UP_TABLE_MAX_FIELDS, "table %s has too many fields", l->title);
  const hid_t t = H5Tcopy(native);
  if (t < 0) {
    up_h5_fail(e, "cannot copy the type of field '%s' of table '%s'", name, l->title);
    return -1;
  }
  UP_ASSERT(H5Tget_size(t) == size, "field %s: C size %zu differs from the HDF5 type's", name, size);
  l->names[l->n_fields] = name;
  l->offsets[l->n_fields] = offset;
  l->sizes[l->n_fields] = size;
  l->types[l->n_fields] = t;
  l->n_fields++;
  return 0;
}

/* A char array member becomes a fixed, NUL-terminated string of the array's size. */
static int up_layout_add_string(up_table_layout *l, const char *name, size_t offset, size_t size,
                                const up_h5_err *e) {
  UP_ASSERT(l->n_fields < UP_TABLE_MAX_FIELDS, "table %s has too many fields", l->title);
  const hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0 || H5Tset_size(t, size) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0) {
    up_h5_fail(e, "cannot build the string type of field '%s' of table '%s'", name, l->title);
    if (t >= 0) H5Tclose(t);
    return -1;
  }
  l->names[l->n_fields] = name;
  l->offsets[l->n_fields] = offset;
  l->sizes[l->n_fields] = size;
  l->types[l->n_fields] = t;
  l->n_fields++;
  return 0;
}

static int up_layout_close(up_table_layout *l, const up_h5_err *e) {
  int rc = 0;
  for (size_t i = 0; i < l->n_fields; i++) {
    if (H5Tclose(l->types[i]) < 0 && rc == 0) {
      up_h5_fail(e, "cannot close the type of field '%s' of table '%s'", l->names[i], l->title);
      rc = -1;
    }
  }
  l->n_fields = 0;
  return rc;
}

#define UP_MEMBER_SIZE(st, m) sizeof(((st *)0)->m)
#define UP_ADD(l, st, m, native) up_layout_add(l, #m, offsetof(st, m), UP_MEMBER_SIZE(st, m), native, e)
#define UP_ADD_STR(l, st, m) up_layout_add_string(l, #m, offsetof(st, m), UP_MEMBER_SIZE(st, m), e)

static int up_layout_summary(up_table_layout *l, const up_h5_err *e) {
  *l = (up_table_layout){.title = "point summary", .record_size = sizeof(up_point_summary)};
  typedef up_point_summary s;
  if (UP_ADD(l, s, point_index, H5T_NATIVE_INT32) < 0 || UP_ADD_STR(l, s, method) < 0 ||
      UP_ADD(l, s, ctx, H5T_NATIVE_INT32) < 0 || UP_ADD(l, s, concurrency, H5T_NATIVE_INT32) < 0 ||
      UP_ADD(l, s, output_len, H5T_NATIVE_INT32) < 0 || UP_ADD(l, s, n_requests, H5T_NATIVE_INT32) < 0 ||
      UP_ADD(l, s, n_ok, H5T_NATIVE_INT32) < 0 || UP_ADD(l, s, n_failed, H5T_NATIVE_INT32) < 0 ||
      UP_ADD(l, s, ttft_mean_ms, H5T_NATIVE_DOUBLE) < 0 || UP_ADD(l, s, ttft_p50_ms, H5T_NATIVE_DOUBLE) < 0 ||
      UP_ADD(l, s, ttft_p99_ms, H5T_NATIVE_DOUBLE) < 0 ||
      UP_ADD(l, s, prefill_tokens_per_s, H5T_NATIVE_DOUBLE) < 0 ||
      UP_ADD(l, s, kept_fraction, H5T_NATIVE_DOUBLE) < 0 || UP_ADD(l, s, speedup_vs_dense, H5T_NATIVE_DOUBLE) < 0 ||
      UP_ADD(l, s, wall_s, H5T_NATIVE_DOUBLE) < 0) {
    up_layout_close(l, e);
    return -1;
  }
  return 0;
}

static int up_layout_requests(up_table_layout *l, const up_h5_err *e) {
  *l = (up_table_layout){.title = "requests", .record_size = sizeof(up_request_record)};
  typedef up_request_record r;
  if (UP_ADD(l, r, id, H5T_NATIVE_INT64) < 0 || UP_ADD(l, r, rank, H5T_NATIVE_INT32) < 0 ||
      UP_ADD(l, r, status, H5T_NATIVE_INT32) < 0 || UP_ADD(l, r, prompt_len, H5T_NATIVE_INT32) < 0 ||
      UP_ADD(l, r, kept_len, H5T_NATIVE_INT32) < 0 || UP_ADD(l, r, output_len, H5T_NATIVE_INT32) < 0 ||
      UP_ADD(l, r, first_token, H5T_NATIVE_INT32) < 0 || UP_ADD(l, r, arrival_s, H5T_NATIVE_DOUBLE) < 0 ||
      UP_ADD(l, r, admitted_s, H5T_NATIVE_DOUBLE) < 0 || UP_ADD(l, r, first_token_s, H5T_NATIVE_DOUBLE) < 0 ||
      UP_ADD(l, r, finish_s, H5T_NATIVE_DOUBLE) < 0 || UP_ADD(l, r, ttft_ms, H5T_NATIVE_DOUBLE) < 0 ||
      UP_ADD(l, r, tpot_ms, H5T_NATIVE_DOUBLE) < 0 || UP_ADD(l, r, e2e_ms, H5T_NATIVE_DOUBLE) < 0 ||
      UP_ADD_STR(l, r, error) < 0) {
    up_layout_close(l, e);
    return -1;
  }
  return 0;
}

static int up_layout_steps(up_table_layout *l, const up_h5_err *e) {
  *l = (up_table_layout){.title = "steps", .record_size = sizeof(up_step_record)};
  typedef up_step_record s;
  if (UP_ADD(l, s, index, H5T_NATIVE_INT64) < 0 || UP_ADD(l, s, rank, H5T_NATIVE_INT32) < 0 ||
      UP_ADD(l, s, n_seqs, H5T_NATIVE_INT32) < 0 || UP_ADD(l, s, prefill_tokens, H5T_NATIVE_INT64) < 0 ||
      UP_ADD(l, s, decode_tokens, H5T_NATIVE_INT64) < 0 || UP_ADD(l, s, start_s, H5T_NATIVE_DOUBLE) < 0 ||
      UP_ADD(l, s, end_s, H5T_NATIVE_DOUBLE) < 0) {
    up_layout_close(l, e);
    return -1;
  }
  return 0;
}

/* Create table NAME under LOC holding N records (zero is allowed: H5TB then makes an
 * empty chunked dataset with an unlimited dimension and writes nothing). */
static int up_table_create(hid_t loc, const char *loc_name, const char *name, const up_table_layout *l,
                           hsize_t chunk, hsize_t n, const void *records, const up_h5_err *e) {
  /* H5TB's prototype lacks the inner const; it only reads the names. Compress 1 turns
   * on deflate through the table's creation property list. */
  const char **names = (const char **)l->names;
  if (H5TBmake_table(l->title, loc, name, l->n_fields, n, l->record_size, names, l->offsets, l->types, chunk, NULL,
                     1, n > 0 ? records : NULL) < 0) {
    up_h5_fail(e, "cannot create table '%s/%s' with %llu records", loc_name, name, (unsigned long long)n);
    return -1;
  }
  return 0;
}

/* ---- attributes ------------------------------------------------------------- */

/* Scalar attribute stored with the native type of its C value. */
static int up_attr_write(hid_t loc, const char *loc_name, const char *name, hid_t type, const void *value,
                         const up_h5_err *e) {
  const hid_t space = H5Screate(H5S_SCALAR);
  if (space < 0) {
    up_h5_fail(e, "cannot create the dataspace of attribute '%s' of '%s'", name, loc_name);
    return -1;
  }
  const hid_t attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = 0;
  if (attr < 0) {
    up_h5_fail(e, "cannot create attribute '%s' of '%s'", name, loc_name);
    rc = -1;
  } else if (H5Awrite(attr, type, value) < 0) {
    up_h5_fail(e, "cannot write attribute '%s' of '%s'", name, loc_name);
    rc = -1;
  }
  if (attr >= 0 && H5Aclose(attr) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close attribute '%s' of '%s'", name, loc_name);
    rc = -1;
  }
  if (H5Sclose(space) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close the dataspace of attribute '%s' of '%s'", name, loc_name);
    rc = -1;
  }
  return rc;
}

/* Variable-length UTF-8 string, so h5py returns str rather than bytes; NULL is "". */
static int up_attr_write_string(hid_t loc, const char *loc_name, const char *name, const char *value,
                                const up_h5_err *e) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  if (type < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
    up_h5_fail(e, "cannot build the string type of attribute '%s' of '%s'", name, loc_name);
    if (type >= 0) H5Tclose(type);
    return -1;
  }
  const char *text = value != NULL ? value : "";
  const int rc = up_attr_write(loc, loc_name, name, type, &text, e);
  if (H5Tclose(type) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close the string type of attribute '%s' of '%s'", name, loc_name);
    return -1;
  }
  return rc;
}

static int up_write_root_attrs(hid_t file, const up_run_info *info, const up_h5_err *e) {
  const int32_t schema = UP_RESULTS_SCHEMA_VERSION;
  const char *root = "/";
  if (up_attr_write(file, root, "schema_version", H5T_NATIVE_INT32, &schema, e) < 0 ||
      up_attr_write_string(file, root, "tool", "uniprefill-bench", e) < 0 ||
      up_attr_write_string(file, root, "tool_version", info->tool_version, e) < 0 ||
      up_attr_write_string(file, root, "git_commit", info->git_commit, e) < 0 ||
      up_attr_write_string(file, root, "argv", info->argv_joined, e) < 0 ||
      up_attr_write_string(file, root, "hostnames", info->hostnames, e) < 0 ||
      up_attr_write(file, root, "world_size", H5T_NATIVE_INT32, &info->world_size, e) < 0 ||
      up_attr_write_string(file, root, "backend", info->backend, e) < 0 ||
      up_attr_write_string(file, root, "device_names", info->device_names, e) < 0 ||
      up_attr_write_string(file, root, "model", info->model, e) < 0 ||
      up_attr_write_string(file, root, "library_versions", info->library_versions, e) < 0 ||
      up_attr_write_string(file, root, "started_utc", info->started_utc, e) < 0) {
    return -1;
  }
  return 0;
}

static int up_write_point_attrs(hid_t group, const char *name, const up_point_params *p, double wall_s,
                                const up_h5_err *e) {
  if (up_attr_write(group, name, "index", H5T_NATIVE_INT32, &p->index, e) < 0 ||
      up_attr_write_string(group, name, "method", p->method, e) < 0 ||
      up_attr_write(group, name, "ctx", H5T_NATIVE_INT32, &p->ctx, e) < 0 ||
      up_attr_write(group, name, "concurrency", H5T_NATIVE_INT32, &p->concurrency, e) < 0 ||
      up_attr_write(group, name, "output_len", H5T_NATIVE_INT32, &p->output_len, e) < 0 ||
      up_attr_write(group, name, "n_requests", H5T_NATIVE_INT32, &p->n_requests, e) < 0 ||
      up_attr_write(group, name, "seed", H5T_NATIVE_UINT64, &p->seed, e) < 0 ||
      up_attr_write(group, name, "top_p", H5T_NATIVE_FLOAT, &p->top_p, e) < 0 ||
      up_attr_write(group, name, "keep_fraction", H5T_NATIVE_FLOAT, &p->keep_fraction, e) < 0 ||
      up_attr_write(group, name, "block", H5T_NATIVE_INT32, &p->block, e) < 0 ||
      up_attr_write(group, name, "sink", H5T_NATIVE_INT32, &p->sink, e) < 0 ||
      up_attr_write(group, name, "last_q", H5T_NATIVE_INT32, &p->last_q, e) < 0 ||
      up_attr_write_string(group, name, "drop_layers", p->drop_layers, e) < 0 ||
      up_attr_write(group, name, "max_seqs", H5T_NATIVE_INT32, &p->max_seqs, e) < 0 ||
      up_attr_write(group, name, "max_batch_tokens", H5T_NATIVE_INT64, &p->max_batch_tokens, e) < 0 ||
      up_attr_write(group, name, "kv_block_tokens", H5T_NATIVE_INT32, &p->kv_block_tokens, e) < 0 ||
      up_attr_write(group, name, "kv_blocks_total", H5T_NATIVE_INT64, &p->kv_blocks_total, e) < 0 ||
      up_attr_write(group, name, "kv_blocks_peak", H5T_NATIVE_INT64, &p->kv_blocks_peak, e) < 0 ||
      up_attr_write(group, name, "kv_block_bytes", H5T_NATIVE_INT64, &p->kv_block_bytes, e) < 0 ||
      up_attr_write(group, name, "wall_s", H5T_NATIVE_DOUBLE, &wall_s, e) < 0) {
    return -1;
  }
  return 0;
}

/* ---- datasets --------------------------------------------------------------- */

/* A plain 2-D dataset [rows][cols]; either may be zero, then nothing is written (an
 * empty selection has no buffer to read from). */
static int up_matrix_write(hid_t loc, const char *loc_name, const char *name, hid_t type, hsize_t rows,
                           hsize_t cols, const void *data, const up_h5_err *e) {
  const hsize_t dims[2] = {rows, cols};
  const hid_t space = H5Screate_simple(2, dims, NULL);
  if (space < 0) {
    up_h5_fail(e, "cannot create the dataspace of dataset '%s/%s'", loc_name, name);
    return -1;
  }
  const hid_t dset = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int rc = 0;
  if (dset < 0) {
    up_h5_fail(e, "cannot create dataset '%s/%s'", loc_name, name);
    rc = -1;
  } else if (rows > 0 && cols > 0 && H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    up_h5_fail(e, "cannot write dataset '%s/%s'", loc_name, name);
    rc = -1;
  }
  if (dset >= 0 && H5Dclose(dset) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close dataset '%s/%s'", loc_name, name);
    rc = -1;
  }
  if (H5Sclose(space) < 0 && rc == 0) {
    up_h5_fail(e, "cannot close the dataspace of dataset '%s/%s'", loc_name, name);
    rc = -1;
  }
  return rc;
}

/* ---- public API ------------------------------------------------------------- */

static void up_results_free(up_results_file *f) {
  free(f->path);
  free(f);
}

up_results_file *up_results_open(const char *path, const up_run_info *info, char *err, size_t err_size) {
  const up_h5_err e = {.path = path, .buf = err, .size = err_size};
  /* Our messages replace HDF5's stack dumps on stderr; the stack is still read for causes. */
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (path == NULL || info == NULL) {
    up_h5_fail_plain(&e, "no path or run info given");
    return NULL;
  }

  up_results_file *f = up_calloc_or_die(1, sizeof *f, "results file handle");
  f->path = strdup(path);
  if (f->path == NULL) UP_FATAL("out of memory copying the results path");
  f->file = H5I_INVALID_HID;
  f->points = H5I_INVALID_HID;
  if (up_layout_summary(&f->summary_layout, &e) < 0) goto fail_layouts;
  if (up_layout_requests(&f->request_layout, &e) < 0) goto fail_layouts;
  if (up_layout_steps(&f->step_layout, &e) < 0) goto fail_layouts;

  /* v1.8 format at least, so readers built on HDF5 1.8+ open it and, unlike the 1.10
   * superblock, no "file is open" flag is left behind when a run is killed. SEMI close
   * makes H5Fclose fail loudly if an object was left open instead of deferring it. */
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0 ||
      H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI) < 0) {
    up_h5_fail(&e, "cannot build the file access property list");
    if (fapl >= 0) H5Pclose(fapl);
    goto fail_layouts;
  }
  f->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f->file < 0) {
    /* Before H5Pclose: every API call clears the error stack the cause is read from. */
    up_h5_fail(&e, "cannot create the file (does its directory exist and is it writable?)");
    H5Pclose(fapl);
    goto fail_layouts;
  }
  if (H5Pclose(fapl) < 0) {
    up_h5_fail(&e, "cannot close the file access property list");
    goto fail_file;
  }
  if (up_write_root_attrs(f->file, info, &e) < 0) goto fail_file;
  f->points = H5Gcreate2(f->file, "points", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (f->points < 0) {
    up_h5_fail(&e, "cannot create group '/points'");
    goto fail_file;
  }
  if (up_table_create(f->file, "", "summary", &f->summary_layout, UP_SUMMARY_CHUNK_RECORDS, 0, NULL, &e) < 0) {
    goto fail_file;
  }
  if (H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0) {
    up_h5_fail(&e, "cannot flush the file after creating it");
    goto fail_file;
  }
  return f;

fail_file:
  if (f->points >= 0) H5Gclose(f->points);
  H5Fclose(f->file);
fail_layouts:
  up_layout_close(&f->summary_layout, &e);
  up_layout_close(&f->request_layout, &e);
  up_layout_close(&f->step_layout, &e);
  up_results_free(f);
  return NULL;
}

static int up_check_point_args(const up_point_params *params, const up_point_summary *summary,
                               const up_point_result *r, const up_h5_err *e) {
  if (params == NULL || summary == NULL || r == NULL) {
    up_h5_fail_plain(e, "write_point needs params, summary and result");
    return -1;
  }
  if (params->index < 0) {
    up_h5_fail_plain(e, "point index %d is negative", params->index);
    return -1;
  }
  if (r->n_layers < 0 || r->n_requests < 0 || r->n_steps < 0) {
    up_h5_fail_plain(e, "point %d: negative count (layers %d, requests %d, steps %d)", params->index, r->n_layers,
                     r->n_requests, r->n_steps);
    return -1;
  }
  if ((r->n_requests > 0 && (r->requests == NULL || (r->n_layers > 0 && r->request_layer_tokens == NULL))) ||
      (r->n_steps > 0 && (r->steps == NULL || (r->n_layers > 0 && r->step_layer_tokens == NULL)))) {
    up_h5_fail_plain(e, "point %d: result has records counted but no arrays", params->index);
    return -1;
  }
  return 0;
}

int up_results_write_point(up_results_file *file, const up_point_params *params, const up_point_summary *summary,
                           const up_point_result *result, char *err, size_t err_size) {
  const up_h5_err e = {.path = file != NULL ? file->path : "(none)", .buf = err, .size = err_size};
  if (file == NULL) {
    up_h5_fail_plain(&e, "write_point on a file that is not open");
    return -1;
  }
  if (up_check_point_args(params, summary, result, &e) < 0) return -1;

  char name[32], full[48];
  snprintf(name, sizeof name, "%04d", params->index);
  snprintf(full, sizeof full, "/points/%s", name);
  const hid_t group = H5Gcreate2(file->points, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (group < 0) {
    up_h5_fail(&e, "cannot create group '%s' (was point %d written twice?)", full, params->index);
    return -1;
  }
  /* The point's duration is the longest rank's, as in /summary. */
  int rc = 0;
  if (up_write_point_attrs(group, full, params, summary->wall_s, &e) < 0 ||
      up_table_create(group, full, "requests", &file->request_layout, UP_TABLE_CHUNK_RECORDS,
                      (hsize_t)result->n_requests, result->requests, &e) < 0 ||
      up_table_create(group, full, "steps", &file->step_layout, UP_TABLE_CHUNK_RECORDS, (hsize_t)result->n_steps,
                      result->steps, &e) < 0 ||
      up_matrix_write(group, full, "request_layer_tokens", H5T_NATIVE_INT32, (hsize_t)result->n_requests,
                      (hsize_t)result->n_layers, result->request_layer_tokens, &e) < 0 ||
      up_matrix_write(group, full, "step_layer_tokens", H5T_NATIVE_INT64, (hsize_t)result->n_steps,
                      (hsize_t)result->n_layers, result->step_layer_tokens, &e) < 0) {
    rc = -1;
  }
  if (H5Gclose(group) < 0 && rc == 0) {
    up_h5_fail(&e, "cannot close group '%s'", full);
    rc = -1;
  }
  if (rc < 0) return -1;

  const up_table_layout *l = &file->summary_layout;
  if (H5TBappend_records(file->file, "summary", 1, l->record_size, l->offsets, l->sizes, summary) < 0) {
    up_h5_fail(&e, "cannot append the row of point %d to table '/summary'", params->index);
    return -1;
  }
  file->n_summary_rows++;
  /* Flush now so a run killed later keeps this point. */
  if (H5Fflush(file->file, H5F_SCOPE_GLOBAL) < 0) {
    up_h5_fail(&e, "cannot flush after writing point '%s'", full);
    return -1;
  }
  return 0;
}

int up_results_update_speedups(up_results_file *file, const up_point_summary *rows, int32_t n_rows, char *err,
                               size_t err_size) {
  const up_h5_err e = {.path = file != NULL ? file->path : "(none)", .buf = err, .size = err_size};
  if (file == NULL || (rows == NULL && n_rows > 0) || n_rows < 0) {
    up_h5_fail_plain(&e, "update_speedups needs an open file and %d rows", n_rows);
    return -1;
  }
  if ((hsize_t)n_rows != file->n_summary_rows) {
    up_h5_fail_plain(&e, "update_speedups got %d rows but table '/summary' has %llu", n_rows,
                     (unsigned long long)file->n_summary_rows);
    return -1;
  }
  if (n_rows == 0) return 0;
  /* Read the one field straight out of the row structs: the memory type H5TB builds is
   * a record of the struct's size holding only that field at its offset. */
  const size_t offset = offsetof(up_point_summary, speedup_vs_dense);
  const size_t size = sizeof rows[0].speedup_vs_dense;
  if (H5TBwrite_fields_name(file->file, "summary", "speedup_vs_dense", 0, (hsize_t)n_rows, sizeof(up_point_summary),
                            &offset, &size, rows) < 0) {
    up_h5_fail(&e, "cannot rewrite field 'speedup_vs_dense' of table '/summary'");
    return -1;
  }
  if (H5Fflush(file->file, H5F_SCOPE_GLOBAL) < 0) {
    up_h5_fail(&e, "cannot flush after updating the speedups");
    return -1;
  }
  return 0;
}

int up_results_close(up_results_file *file, char *err, size_t err_size) {
  if (file == NULL) return 0;
  const up_h5_err e = {.path = file->path, .buf = err, .size = err_size};
  int rc = 0;
  if (H5Gclose(file->points) < 0) {
    up_h5_fail(&e, "cannot close group '/points'");
    rc = -1;
  }
  if (up_layout_close(&file->summary_layout, &e) < 0) rc = -1;
  if (up_layout_close(&file->request_layout, &e) < 0) rc = -1;
  if (up_layout_close(&file->step_layout, &e) < 0) rc = -1;
  if (H5Fclose(file->file) < 0 && rc == 0) {
    up_h5_fail(&e, "cannot close the file (an object may still be open)");
    rc = -1;
  }
  up_results_free(file);
  return rc;
}

/* request_records_diff.c — compare_request_records.py's check in C, for machines whose
 * Python has no h5py (the GPU machine's ctest): two run files of the same sweep must
 * hold the same points, and per point the same per-request records (id, status, prompt,
 * kept and output lengths, first token, KV bytes cached, held and dense), the same kept
 * tokens at every layer and the same number of output-token times per request. Timings
 * and ranks are not compared. Reads run files only; owns no part of the benchmark.
 * It also checks a root string attribute's start (--attr: a run's transport, say).
 * Usage: request_records_diff A.h5 B.h5              (exit 0 equal, 1 different, 2 unreadable)
 *        request_records_diff --attr RUN.h5 NAME PREFIX  (exit 0 when NAME starts with PREFIX) */
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const request_fields[] = {"id",          "status",   "prompt_len",    "kept_len",      "output_len",
                                             "first_token", "kv_bytes", "kv_held_bytes", "kv_dense_bytes"};
enum { N_REQUEST_FIELDS = sizeof request_fields / sizeof request_fields[0] };

static void die(int code, const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "request_records_diff: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  exit(code);
}

static void *alloc_or_die(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) die(2, "out of memory%s%s", "", "");
  return p;
}

/* The number of rows of a one- or two-dimensional dataset; *cols gets the second
 * dimension (1 for one dimension). */
static hsize_t dataset_rows(hid_t dset, hsize_t *cols, const char *path) {
  const hid_t space = H5Dget_space(dset);
  hsize_t dims[2] = {0, 1};
  const int rank = space < 0 ? -1 : H5Sget_simple_extent_dims(space, dims, NULL);
  if (space >= 0) H5Sclose(space);
  if (rank < 1 || rank > 2) die(2, "%s: not a table or matrix%s", path, "");
  *cols = rank == 2 ? dims[1] : 1;
  return dims[0];
}

/* One field of a compound table converted to int64 (HDF5 matches the member by name),
 * or a whole integer dataset when field is NULL; *n receives the element count. */
static int64_t *read_int64(hid_t file, const char *path, const char *field, hsize_t *n) {
  const hid_t dset = H5Dopen2(file, path, H5P_DEFAULT);
  if (dset < 0) die(2, "cannot open %s%s", path, "");
  hsize_t cols = 1;
  *n = dataset_rows(dset, &cols, path) * cols;
  int64_t *values = alloc_or_die((size_t)*n, sizeof *values);
  hid_t memtype = H5T_NATIVE_INT64;
  if (field) {
    memtype = H5Tcreate(H5T_COMPOUND, sizeof(int64_t));
    if (memtype < 0 || H5Tinsert(memtype, field, 0, H5T_NATIVE_INT64) < 0) die(2, "%s: type for field %s", path, field);
  }
  if (*n > 0 && H5Dread(dset, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)
    die(2, "cannot read %s (field %s)", path, field ? field : "-");
  if (field) H5Tclose(memtype);
  H5Dclose(dset);
  return values;
}

/* Whether the two files' dataset (or table field) at path hold the same integers;
 * counts compares consecutive differences instead (offsets into token_times). */
static int same_integers(hid_t a, hid_t b, const char *path, const char *field, int differences) {
  hsize_t na = 0, nb = 0;
  int64_t *va = read_int64(a, path, field, &na);
  int64_t *vb = read_int64(b, path, field, &nb);
  int same = na == nb;
  for (hsize_t i = differences; same && i < na; ++i) {
    const int64_t x = differences ? va[i] - va[i - 1] : va[i];
    const int64_t y = differences ? vb[i] - vb[i - 1] : vb[i];
    if (x != y) {
      printf("%s%s%s: element %llu differs: %" PRId64 " vs %" PRId64 "\n", path, field ? " field " : "",
             field ? field : "", (unsigned long long)i, x, y);
      same = 0;
    }
  }
  if (na != nb)
    printf("%s%s%s: %llu vs %llu elements\n", path, field ? " field " : "", field ? field : "",
           (unsigned long long)na, (unsigned long long)nb);
  free(va);
  free(vb);
  return same;
}

static hsize_t point_count(hid_t file, const char *name) {
  H5G_info_t info;
  const hid_t points = H5Gopen2(file, "points", H5P_DEFAULT);
  if (points < 0 || H5Gget_info(points, &info) < 0) die(2, "%s: no /points group%s", name, "");
  H5Gclose(points);
  return info.nlinks;
}

/* --attr: whether the root string attribute name of the file starts with prefix. */
static int attribute_starts_with(const char *path, const char *name, const char *prefix) {
  const hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) die(2, "cannot open %s as HDF5%s", path, "");
  const hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  if (attr < 0) die(2, "%s: no root attribute %s", path, name);
  const hid_t type = H5Tcopy(H5T_C_S1);
  char *value = NULL;
  if (type < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0 ||
      H5Aread(attr, type, &value) < 0 || value == NULL)
    die(2, "%s: attribute %s is not a variable-length string", path, name);
  const int starts = strncmp(value, prefix, strlen(prefix)) == 0;
  printf("%s: %s = '%s'", path, name, value);
  if (!starts) printf(", expected it to start with '%s'", prefix);
  printf("\n");
  H5free_memory(value);
  H5Tclose(type);
  H5Aclose(attr);
  H5Fclose(file);
  return starts ? 0 : 1;
}

int main(int argc, char **argv) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our own messages name the object */
  if (argc == 5 && strcmp(argv[1], "--attr") == 0) return attribute_starts_with(argv[2], argv[3], argv[4]);
  if (argc != 3) die(2, "usage: request_records_diff A.h5 B.h5, or --attr RUN.h5 NAME PREFIX%s%s", "", "");
  const hid_t a = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t b = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
  if (a < 0 || b < 0) die(2, "cannot open %s or %s as HDF5", argv[1], argv[2]);
  const hsize_t points = point_count(a, argv[1]);
  if (points != point_count(b, argv[2]) || points == 0) {
    printf("different or no points: %llu vs %llu\n", (unsigned long long)points,
           (unsigned long long)point_count(b, argv[2]));
    return 1;
  }
  int same = 1;
  hsize_t requests = 0;
  for (hsize_t p = 0; p < points && same; ++p) {
    char path[64];
    snprintf(path, sizeof path, "/points/%04llu/requests", (unsigned long long)p);
    for (int f = 0; f < N_REQUEST_FIELDS && same; ++f) same = same_integers(a, b, path, request_fields[f], 0);
    hsize_t n = 0;
    free(read_int64(a, path, "id", &n));
    requests += n;
    snprintf(path, sizeof path, "/points/%04llu/request_layer_tokens", (unsigned long long)p);
    same = same && same_integers(a, b, path, NULL, 0);
    snprintf(path, sizeof path, "/points/%04llu/token_offsets", (unsigned long long)p);
    same = same && same_integers(a, b, path, NULL, 1);
  }
  H5Fclose(a);
  H5Fclose(b);
  if (same) printf("%llu points, %llu requests: records equal\n", (unsigned long long)points,
                   (unsigned long long)requests);
  return same ? 0 : 1;
}

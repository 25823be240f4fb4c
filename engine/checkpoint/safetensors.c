/* safetensors.c — the .safetensors reader (see safetensors.h): map the file, copy the
 * header out and parse it with cJSON, check every tensor entry field by field, then
 * check names and byte ranges across entries by sorting. The parsed JSON tree stays
 * alive with the reader: tensor names and metadata values point into it. */
#include "engine/checkpoint/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/checkpoint/json_input.h"
#include "core/fatal.h"
#include "core/float16.h"

struct up_safetensors {
  char *name;
  const uint8_t *data_section; /* first byte after the header */
  uint64_t data_size;
  void *map; /* the whole file when we mapped it; NULL over a caller's buffer */
  size_t map_size;
  cJSON *header;
  const cJSON *metadata; /* the "__metadata__" object, or NULL */
  int64_t n_tensors;
  up_st_tensor *tensors; /* header order */
  const up_st_tensor **by_name; /* sorted by name */
};

size_t up_st_dtype_size(up_st_dtype dtype) { return dtype == UP_ST_F32 ? 4 : 2; }

const char *up_st_dtype_name(up_st_dtype dtype) {
  switch (dtype) {
    case UP_ST_F32: return "F32";
    case UP_ST_F16: return "F16";
    case UP_ST_BF16: return "BF16";
  }
  return "?";
}

/* Dtypes the format defines that the engine does not read: named in the error so a
 * user sees "F64 is not supported" rather than "unknown dtype". */
static bool is_known_unsupported_dtype(const char *s) {
  static const char *const known[] = {"F64", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL",
                                      "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; ++i)
    if (strcmp(s, known[i]) == 0) return true;
  return false;
}

/* Validate one header entry and fill t (data pointer included). */
static bool parse_tensor_entry(const up_safetensors *st, const cJSON *entry, up_st_tensor *t, char *err,
                               size_t err_size) {
  const char *file = st->name, *name = entry->string;
  if (!name || !name[0]) return up_error(err, err_size, "%s: a tensor has an empty name", file);
  if (!cJSON_IsObject(entry))
    return up_error(err, err_size, "%s: tensor '%s': entry is not a JSON object", file, name);
  t->name = name;

  const char *dup = up_json_duplicate_key(entry);
  if (dup) return up_error(err, err_size, "%s: tensor '%s': field '%s' appears twice", file, name, dup);
  static const char *const fields[] = {"dtype", "shape", "data_offsets"};
  const cJSON *field[3];
  for (int i = 0; i < 3; ++i) {
    field[i] = cJSON_GetObjectItemCaseSensitive(entry, fields[i]);
    if (!field[i]) return up_error(err, err_size, "%s: tensor '%s': missing field '%s'", file, name, fields[i]);
  }
  const cJSON *dtype = field[0], *shape = field[1], *offsets = field[2];

  if (!cJSON_IsString(dtype))
    return up_error(err, err_size, "%s: tensor '%s': 'dtype' is not a string", file, name);
  const char *d = dtype->valuestring;
  if (strcmp(d, "F32") == 0) t->dtype = UP_ST_F32;
  else if (strcmp(d, "F16") == 0) t->dtype = UP_ST_F16;
  else if (strcmp(d, "BF16") == 0) t->dtype = UP_ST_BF16;
  else if (is_known_unsupported_dtype(d))
    return up_error(err, err_size, "%s: tensor '%s': dtype %s is not supported (BF16, F16 or F32)", file, name, d);
  else
    return up_error(err, err_size, "%s: tensor '%s': unknown dtype '%.32s'", file, name, d);

  if (!cJSON_IsArray(shape)) return up_error(err, err_size, "%s: tensor '%s': 'shape' is not an array", file, name);
  const int n_dims = cJSON_GetArraySize(shape);
  if (n_dims > UP_ST_MAX_DIMS)
    return up_error(err, err_size, "%s: tensor '%s': %d dimensions (at most %d)", file, name, n_dims, UP_ST_MAX_DIMS);
  t->n_dims = n_dims;
  uint64_t n_elements = 1;
  int dim = 0;
  const cJSON *extent = NULL;
  cJSON_ArrayForEach(extent, shape) {
    int64_t v;
    if (!up_json_integer(extent, 0, INT64_MAX, &v))
      return up_error(err, err_size, "%s: tensor '%s': shape[%d] is not an integer in 0..2^53", file, name, dim);
    if (__builtin_mul_overflow(n_elements, (uint64_t)v, &n_elements) || n_elements > (uint64_t)INT64_MAX)
      return up_error(err, err_size, "%s: tensor '%s': shape's element count overflows", file, name);
    t->shape[dim++] = v;
  }
  t->n_elements = (int64_t)n_elements;
  uint64_t n_bytes;
  if (__builtin_mul_overflow(n_elements, (uint64_t)up_st_dtype_size(t->dtype), &n_bytes))
    return up_error(err, err_size, "%s: tensor '%s': byte size overflows", file, name);

  int64_t first, last;
  if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
      !up_json_integer(cJSON_GetArrayItem(offsets, 0), 0, INT64_MAX, &first) ||
      !up_json_integer(cJSON_GetArrayItem(offsets, 1), 0, INT64_MAX, &last))
    return up_error(err, err_size, "%s: tensor '%s': 'data_offsets' is not [begin, end] of integers in 0..2^53",
                file, name);
  const uint64_t begin = (uint64_t)first, end = (uint64_t)last;
  if (begin > end)
    return up_error(err, err_size, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", file, name,
                (unsigned long long)begin, (unsigned long long)end);
  if (end > st->data_size)
    return up_error(err, err_size, "%s: tensor '%s': data_offsets end at %llu, past the %llu data bytes", file, name,
                (unsigned long long)end, (unsigned long long)st->data_size);
  if (end - begin != n_bytes)
    return up_error(err, err_size, "%s: tensor '%s': data_offsets span %llu bytes but %s shape needs %llu", file, name,
                (unsigned long long)(end - begin), d, (unsigned long long)n_bytes);
  t->offset = begin;
  t->n_bytes = n_bytes;
  t->data = st->data_section + begin;
  return true;
}

static bool parse_metadata(const up_safetensors *st, const cJSON *meta, char *err, size_t err_size) {
  if (cJSON_IsNull(meta)) return true;
  if (!cJSON_IsObject(meta)) return up_error(err, err_size, "%s: '__metadata__' is not a JSON object", st->name);
  const cJSON *item = NULL;
  cJSON_ArrayForEach(item, meta) {
    if (!cJSON_IsString(item))
      return up_error(err, err_size, "%s: '__metadata__' value of '%.64s' is not a string", st->name, item->string);
  }
  return true;
}

static int compare_tensor_names(const void *a, const void *b) {
  return strcmp((*(const up_st_tensor *const *)a)->name, (*(const up_st_tensor *const *)b)->name);
}

void up_st_sort_by_name(const up_st_tensor **tensors, int64_t count) {
  if (count > 1) qsort(tensors, (size_t)count, sizeof *tensors, compare_tensor_names);
}

const up_st_tensor *up_st_find_sorted(const up_st_tensor *const *sorted, int64_t count, const char *name) {
  int64_t lo = 0, hi = count;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    const int c = strcmp(sorted[mid]->name, name);
    if (c == 0) return sorted[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

typedef struct byte_range {
  uint64_t begin, end;
  int64_t index;
} byte_range;

static int compare_ranges(const void *a, const void *b) {
  const byte_range *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

/* Two tensors may not share bytes; empty tensors share none, wherever they sit. */
static bool check_no_overlap(const up_safetensors *st, char *err, size_t err_size) {
  if (st->n_tensors < 2) return true;
  byte_range *r = up_malloc_or_die(sizeof *r * (size_t)st->n_tensors, "safetensors byte ranges");
  int64_t n = 0;
  for (int64_t i = 0; i < st->n_tensors; ++i)
    if (st->tensors[i].n_bytes)
      r[n++] = (byte_range){st->tensors[i].offset, st->tensors[i].offset + st->tensors[i].n_bytes, i};
  qsort(r, (size_t)n, sizeof *r, compare_ranges);
  bool ok = true;
  for (int64_t i = 1; i < n && ok; ++i)
    if (r[i].begin < r[i - 1].end)
      ok = up_error(err, err_size, "%s: tensors '%s' and '%s' overlap in the data section", st->name,
                st->tensors[r[i - 1].index].name, st->tensors[r[i].index].name);
  free(r);
  return ok;
}

static bool parse_header(up_safetensors *st, const uint8_t *file, uint64_t size, char *err, size_t err_size) {
  if (size < 8)
    return up_error(err, err_size, "%s: %llu bytes, too short for the 8-byte header length", st->name,
                (unsigned long long)size);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file[i];
  if (header_len < 2 || header_len > size - 8)
    return up_error(err, err_size, "%s: header length %llu does not fit the %llu bytes after the length field",
                st->name, (unsigned long long)header_len, (unsigned long long)(size - 8));
  if (header_len > UP_ST_MAX_HEADER_BYTES)
    return up_error(err, err_size, "%s: header length %llu exceeds the %u-byte limit", st->name,
                (unsigned long long)header_len, UP_ST_MAX_HEADER_BYTES);
  st->data_section = file + 8 + header_len;
  st->data_size = size - 8 - header_len;

  char source[4200]; /* a path and ": header" */
  snprintf(source, sizeof source, "%s: header", st->name);
  st->header = up_json_parse_text((const char *)file + 8, header_len, source, err, err_size);
  if (!st->header) return false;
  if (!cJSON_IsObject(st->header)) return up_error(err, err_size, "%s: header is not a JSON object", st->name);

  const char *dup = up_json_duplicate_key(st->header);
  if (dup) return up_error(err, err_size, "%s: '%s' appears twice in the header", st->name, dup);

  const cJSON *entry = NULL;
  st->n_tensors = 0;
  cJSON_ArrayForEach(entry, st->header) {
    if (entry->string && strcmp(entry->string, "__metadata__") == 0) st->metadata = entry;
    else ++st->n_tensors;
  }
  if (st->metadata && !parse_metadata(st, st->metadata, err, err_size)) return false;
  if (st->metadata && cJSON_IsNull(st->metadata)) st->metadata = NULL;
  const char *dup_key = st->metadata ? up_json_duplicate_key(st->metadata) : NULL;
  if (dup_key) return up_error(err, err_size, "%s: '__metadata__' key '%s' appears twice", st->name, dup_key);

  st->tensors = up_calloc_or_die((size_t)st->n_tensors + 1, sizeof *st->tensors, "safetensors tensors");
  int64_t i = 0;
  cJSON_ArrayForEach(entry, st->header) {
    if (entry->string && strcmp(entry->string, "__metadata__") == 0) continue;
    if (!parse_tensor_entry(st, entry, &st->tensors[i++], err, err_size)) return false;
  }
  if (!check_no_overlap(st, err, err_size)) return false;

  st->by_name = up_malloc_or_die(sizeof *st->by_name * ((size_t)st->n_tensors + 1), "safetensors name index");
  for (int64_t t = 0; t < st->n_tensors; ++t) st->by_name[t] = &st->tensors[t];
  up_st_sort_by_name(st->by_name, st->n_tensors);
  return true;
}

static up_safetensors *reader_new(const char *name) {
  up_safetensors *st = up_calloc_or_die(1, sizeof *st, "safetensors reader");
  st->name = strdup(name ? name : "(buffer)");
  if (!st->name) UP_FATAL("out of host memory for a safetensors file name");
  return st;
}

up_safetensors *up_safetensors_open_buffer(const void *data, size_t size, const char *name, char *err,
                                           size_t err_size) {
  up_safetensors *st = reader_new(name);
  if (!parse_header(st, data, size, err, err_size)) {
    up_safetensors_close(st);
    return NULL;
  }
  return st;
}

up_safetensors *up_safetensors_open(const char *path, char *err, size_t err_size) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    up_error(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    up_error(err, err_size, "%s: cannot stat: %s", path, strerror(errno));
    close(fd);
    return NULL;
  }
  if (!S_ISREG(sb.st_mode)) {
    up_error(err, err_size, "%s: not a regular file", path);
    close(fd);
    return NULL;
  }
  up_safetensors *st = reader_new(path);
  const uint64_t size = (uint64_t)sb.st_size;
  if (size >= 8) { /* mmap refuses an empty mapping; parse_header reports a short file */
    st->map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) {
      st->map = NULL;
      up_error(err, err_size, "%s: cannot map %llu bytes: %s", path, (unsigned long long)size, strerror(errno));
      close(fd);
      up_safetensors_close(st);
      return NULL;
    }
    st->map_size = (size_t)size;
  }
  if (close(fd) != 0) {
    up_error(err, err_size, "%s: close failed: %s", path, strerror(errno));
    up_safetensors_close(st);
    return NULL;
  }
  static const uint8_t empty[1] = {0};
  if (!parse_header(st, st->map ? st->map : empty, size, err, err_size)) {
    up_safetensors_close(st);
    return NULL;
  }
  return st;
}

void up_safetensors_close(up_safetensors *st) {
  if (!st) return;
  if (st->map && munmap(st->map, st->map_size) != 0) UP_FATAL("munmap of %s failed: %s", st->name, strerror(errno));
  cJSON_Delete(st->header);
  free(st->tensors);
  free(st->by_name);
  free(st->name);
  free(st);
}

const char *up_safetensors_name(const up_safetensors *st) { return st->name; }

int64_t up_safetensors_tensor_count(const up_safetensors *st) { return st->n_tensors; }

const up_st_tensor *up_safetensors_tensor_at(const up_safetensors *st, int64_t index) {
  return (index >= 0 && index < st->n_tensors) ? &st->tensors[index] : NULL;
}

const up_st_tensor *up_safetensors_find(const up_safetensors *st, const char *name) {
  return up_st_find_sorted(st->by_name, st->n_tensors, name);
}

const char *up_safetensors_metadata(const up_safetensors *st, const char *key) {
  if (!st->metadata) return NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(st->metadata, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool up_safetensors_to_f32(const up_st_tensor *t, float *out, int64_t first, int64_t count, char *err,
                           size_t err_size) {
  if (first < 0 || count < 0 || first > t->n_elements || count > t->n_elements - first)
    return up_error(err, err_size, "tensor '%s': elements [%lld, +%lld) are outside its %lld elements", t->name,
                (long long)first, (long long)count, (long long)t->n_elements);
  /* Bytes are assembled little-endian explicitly: the data has no alignment guarantee
   * and the file's byte order is fixed whatever the host's. */
  const size_t elem = up_st_dtype_size(t->dtype);
  const uint8_t *p = (const uint8_t *)t->data + (size_t)first * elem;
  switch (t->dtype) {
    case UP_ST_F32:
      for (int64_t i = 0; i < count; ++i, p += 4) {
        const uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&out[i], &bits, sizeof bits);
      }
      break;
    case UP_ST_F16:
      for (int64_t i = 0; i < count; ++i, p += 2) out[i] = up_fp16_to_f32((uint16_t)(p[0] | p[1] << 8));
      break;
    case UP_ST_BF16:
      for (int64_t i = 0; i < count; ++i, p += 2) out[i] = up_bf16_to_f32((uint16_t)(p[0] | p[1] << 8));
      break;
  }
  return true;
}

/* gguf.c — the GGUF v2/v3 reader: maps the file (or takes a caller's buffer), walks
 * header, metadata and tensor infos with a bounds-checked cursor, and validates every
 * count, length, shape, type, offset and the data section before handing out pointers.
 * Every count is checked against the bytes left before anything is allocated for it,
 * so a corrupt count fails at once instead of asking for terabytes. Keys and tensor
 * names are hashed (duplicates are errors, lookups O(1)); string arrays keep a table of
 * element positions so the i-th token is O(1). Tensor data is converted by
 * engine/checkpoint/ggml_dequant.c. The file is read as little-endian whatever the host. */
#include "engine/checkpoint/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/checkpoint/ggml_dequant.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_ALIGNMENT_KEY "general.alignment"
/* The smallest encodings, for checking counts against the bytes left: a metadata entry
 * is at least an empty key, a type and a one-byte value; a tensor info at least an
 * empty name, n_dims, one dim, a type and an offset. */
#define GGUF_MIN_KV_BYTES (8u + 4u + 1u)
#define GGUF_MIN_TENSOR_INFO_BYTES (8u + 4u + 8u + 4u + 8u)

typedef struct gguf_kv {
  up_gguf_str key;
  up_gguf_value_type type;
  uint64_t value_pos;           /* file position of the value (arrays: of the first element) */
  up_gguf_value_type elem_type; /* arrays only */
  uint64_t count;               /* arrays only */
  uint64_t *str_pos;            /* string arrays: file position of each element's length */
} gguf_kv;

/* Open-addressing hash from a name (key or tensor name) to its index. */
typedef struct name_slot {
  const char *data; /* NULL: empty slot */
  uint64_t len;
  int64_t index;
} name_slot;

typedef struct name_table {
  name_slot *slots;
  uint64_t mask;
} name_table;

struct up_gguf {
  char *name;
  const uint8_t *base;
  uint64_t size;
  bool mapped;
  uint32_t version;
  uint64_t alignment;
  uint64_t data_start;
  int64_t n_kv;
  gguf_kv *kv;
  name_table key_table;
  int64_t n_tensors;
  up_gguf_tensor *tensors;
  name_table tensor_table;
  char *tensor_names; /* the NUL-terminated names, back to back */
};

/* ---- error messages -------------------------------------------------------------- */

typedef struct parse_ctx {
  up_gguf *g;
  uint64_t pos;
  char *err;
  size_t err_size;
} parse_ctx;

/* "<name>: <message>" into err (which may be NULL). */
static void vreport(char *err, size_t err_size, const char *name, const char *fmt, va_list ap) {
  if (!err || err_size == 0) return;
  int n = snprintf(err, err_size, "%s: ", name);
  if (n >= 0 && (size_t)n < err_size) vsnprintf(err + n, err_size - (size_t)n, fmt, ap);
}

__attribute__((format(printf, 4, 5))) static void report(char *err, size_t err_size, const char *name,
                                                         const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(err, err_size, name, fmt, ap);
  va_end(ap);
}

/* Report a parse error; returns false so callers can `return fail(...)`. */
__attribute__((format(printf, 2, 3))) static bool fail(parse_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(c->err, c->err_size, c->g->name, fmt, ap);
  va_end(ap);
  return false;
}

/* Names come from the file and may be long or hold control bytes: messages show at most
 * this many bytes of them. */
#define NAME_SHOWN 200
static int shown_len(up_gguf_str s) { return s.len > NAME_SHOWN ? NAME_SHOWN : (int)s.len; }

static const char *value_type_name(uint32_t type) {
  static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* ---- little-endian loads and the bounds-checked cursor ----------------------------- */

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t load_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t load_u64(const uint8_t *p) { return (uint64_t)load_u32(p) | (uint64_t)load_u32(p + 4) << 32; }

static uint64_t bytes_left(const parse_ctx *c) { return c->g->size - c->pos; }

/* Take n bytes at the cursor; what names the field for the message. */
static bool take(parse_ctx *c, uint64_t n, const uint8_t **out, const char *what) {
  *out = NULL;
  if (n > bytes_left(c)) {
    return fail(c, "truncated: %s needs %" PRIu64 " bytes at offset %" PRIu64 ", but the file ends at %" PRIu64,
                what, n, c->pos, c->g->size);
  }
  *out = c->g->base + c->pos;
  c->pos += n;
  return true;
}

static bool read_u32(parse_ctx *c, uint32_t *out, const char *what) {
  const uint8_t *p;
  if (!take(c, 4, &p, what)) return false;
  *out = load_u32(p);
  return true;
}

static bool read_u64(parse_ctx *c, uint64_t *out, const char *what) {
  const uint8_t *p;
  if (!take(c, 8, &p, what)) return false;
  *out = load_u64(p);
  return true;
}

/* A length-prefixed string; its length is checked against the bytes left before use. */
static bool read_str(parse_ctx *c, up_gguf_str *out, const char *what) {
  uint64_t len;
  const uint8_t *p;
  if (!read_u64(c, &len, what)) return false;
  if (len > bytes_left(c)) {
    return fail(c, "%s: string length %" PRIu64 " at offset %" PRIu64 " exceeds the %" PRIu64 " bytes left in the file",
                what, len, c->pos - 8, bytes_left(c));
  }
  if (!take(c, len, &p, what)) return false;
  out->data = (const char *)p;
  out->len = len;
  return true;
}

/* ---- name tables --------------------------------------------------------------- */

static uint64_t hash_name(const char *s, uint64_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (uint64_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
  return h;
}

static bool table_init(name_table *t, int64_t n_names) {
  uint64_t cap = 8;
  while (cap < 2 * (uint64_t)n_names) cap *= 2;
  t->slots = calloc(cap, sizeof *t->slots);
  t->mask = cap - 1;
  return t->slots != NULL;
}

static const name_slot *table_find(const name_table *t, const char *s, uint64_t len) {
  if (!t->slots) return NULL;
  for (uint64_t i = hash_name(s, len) & t->mask;; i = (i + 1) & t->mask) {
    const name_slot *slot = &t->slots[i];
    if (!slot->data) return NULL;
    if (slot->len == len && memcmp(slot->data, s, len) == 0) return slot;
  }
}

/* Insert; returns the index already stored under that name, or -1 when it was new. */
static int64_t table_insert(name_table *t, const char *s, uint64_t len, int64_t index) {
  for (uint64_t i = hash_name(s, len) & t->mask;; i = (i + 1) & t->mask) {
    name_slot *slot = &t->slots[i];
    if (!slot->data) {
      *slot = (name_slot){.data = s, .len = len, .index = index};
      return -1;
    }
    if (slot->len == len && memcmp(slot->data, s, len) == 0) return slot->index;
  }
}

/* ---- metadata ------------------------------------------------------------------- */

static uint64_t scalar_bytes(uint32_t type) {
  switch (type) {
  case UP_GGUF_U8: case UP_GGUF_I8: case UP_GGUF_BOOL: return 1;
  case UP_GGUF_U16: case UP_GGUF_I16: return 2;
  case UP_GGUF_U32: case UP_GGUF_I32: case UP_GGUF_F32: return 4;
  case UP_GGUF_U64: case UP_GGUF_I64: case UP_GGUF_F64: return 8;
  default: return 0; /* string, array, unknown */
  }
}

static bool is_known_value_type(uint32_t type) { return type <= UP_GGUF_F64; }

static bool read_kv_value(parse_ctx *c, gguf_kv *kv) {
  const uint8_t *p;
  int key_len = shown_len(kv->key);
  kv->value_pos = c->pos;
  if (kv->type == UP_GGUF_STRING) {
    up_gguf_str s;
    return read_str(c, &s, "metadata string value");
  }
  if (kv->type != UP_GGUF_ARRAY) {
    if (!take(c, scalar_bytes(kv->type), &p, "metadata value")) return false;
    if (kv->type == UP_GGUF_BOOL && *p > 1) {
      return fail(c, "metadata '%.*s': bool value %u is neither 0 nor 1", key_len, kv->key.data, *p);
    }
    return true;
  }

  uint32_t elem_type;
  if (!read_u32(c, &elem_type, "array element type") || !read_u64(c, &kv->count, "array count")) return false;
  if (elem_type == UP_GGUF_ARRAY) {
    return fail(c, "metadata '%.*s': nested arrays are not supported", key_len, kv->key.data);
  }
  if (!is_known_value_type(elem_type)) {
    return fail(c, "metadata '%.*s': unknown array element type %u", key_len, kv->key.data, elem_type);
  }
  kv->elem_type = (up_gguf_value_type)elem_type;
  kv->value_pos = c->pos;
  uint64_t min_elem_bytes = elem_type == UP_GGUF_STRING ? 8 : scalar_bytes(elem_type);
  if (kv->count > bytes_left(c) / min_elem_bytes) {
    return fail(c, "metadata '%.*s': array of %" PRIu64 " %s elements cannot fit in the %" PRIu64 " bytes left in the file",
                key_len, kv->key.data, kv->count, value_type_name(elem_type), bytes_left(c));
  }
  if (elem_type != UP_GGUF_STRING) {
    if (!take(c, kv->count * min_elem_bytes, &p, "array elements")) return false;
    for (uint64_t i = 0; elem_type == UP_GGUF_BOOL && i < kv->count; i++) {
      if (p[i] > 1) {
        return fail(c, "metadata '%.*s': bool element %" PRIu64 " is %u, neither 0 nor 1", key_len, kv->key.data, i, p[i]);
      }
    }
    return true;
  }
  kv->str_pos = malloc((kv->count ? kv->count : 1) * sizeof *kv->str_pos);
  if (!kv->str_pos) {
    return fail(c, "metadata '%.*s': out of memory for %" PRIu64 " string positions", key_len, kv->key.data, kv->count);
  }
  for (uint64_t i = 0; i < kv->count; i++) {
    up_gguf_str s;
    kv->str_pos[i] = c->pos;
    if (!read_str(c, &s, "string array element")) return false;
  }
  return true;
}

/* Names index the tables and become C strings: no NUL inside. */
static bool check_name(parse_ctx *c, up_gguf_str s, const char *what, uint64_t index) {
  if (s.len == 0) return fail(c, "%s %" PRIu64 " has an empty name", what, index);
  if (memchr(s.data, '\0', s.len)) {
    return fail(c, "%s %" PRIu64 " ('%.*s'): name holds a NUL byte", what, index, shown_len(s), s.data);
  }
  return true;
}

/* A header count must fit the bytes left at min_bytes per item, before anything is
 * allocated for it. */
static bool check_header_count(parse_ctx *c, uint64_t count, uint64_t min_bytes, const char *what) {
  if (count <= bytes_left(c) / min_bytes) return true;
  return fail(c, "header claims %" PRIu64 " %s, more than the %" PRIu64 " bytes left can hold", count, what,
              bytes_left(c));
}

static bool parse_metadata(parse_ctx *c, uint64_t n_kv) {
  up_gguf *g = c->g;
  if (!check_header_count(c, n_kv, GGUF_MIN_KV_BYTES, "metadata entries")) return false;
  g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
  if (!g->kv || !table_init(&g->key_table, (int64_t)n_kv)) {
    return fail(c, "out of memory for %" PRIu64 " metadata entries", n_kv);
  }
  for (uint64_t i = 0; i < n_kv; i++) {
    gguf_kv *kv = &g->kv[i];
    uint32_t type;
    g->n_kv = (int64_t)i + 1; /* so close frees this entry's string table */
    if (!read_str(c, &kv->key, "metadata key") || !check_name(c, kv->key, "metadata entry", i)) return false;
    if (table_insert(&g->key_table, kv->key.data, kv->key.len, (int64_t)i) >= 0) {
      return fail(c, "duplicate metadata key '%.*s'", shown_len(kv->key), kv->key.data);
    }
    if (!read_u32(c, &type, "metadata value type")) return false;
    if (!is_known_value_type(type)) {
      return fail(c, "metadata '%.*s': unknown value type %u", shown_len(kv->key), kv->key.data, type);
    }
    kv->type = (up_gguf_value_type)type;
    if (!read_kv_value(c, kv)) return false;
  }
  return true;
}

static const gguf_kv *find_kv(const up_gguf *g, const char *key) {
  if (!g || !key) return NULL;
  const name_slot *slot = table_find(&g->key_table, key, strlen(key));
  return slot ? &g->kv[slot->index] : NULL;
}

static bool parse_alignment(parse_ctx *c) {
  const gguf_kv *kv = find_kv(c->g, GGUF_ALIGNMENT_KEY);
  c->g->alignment = GGUF_DEFAULT_ALIGNMENT;
  if (!kv) return true;
  if (kv->type != UP_GGUF_U32) {
    return fail(c, "metadata '" GGUF_ALIGNMENT_KEY "' has type %s, expected u32", value_type_name(kv->type));
  }
  uint32_t alignment = load_u32(c->g->base + kv->value_pos);
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    return fail(c, "metadata '" GGUF_ALIGNMENT_KEY "' is %u, not a non-zero power of two", alignment);
  }
  c->g->alignment = alignment;
  return true;
}

/* ---- tensors --------------------------------------------------------------------- */

/* Name, shape and type of one tensor info; the offset is checked once the data section
 * is known. */
static bool parse_tensor_info(parse_ctx *c, int64_t index, up_gguf_str *name) {
  up_gguf_tensor *t = &c->g->tensors[index];
  uint32_t n_dims, type_id;
  if (!read_str(c, name, "tensor name") || !check_name(c, *name, "tensor", (uint64_t)index)) return false;
  int name_len = shown_len(*name);
  if (!read_u32(c, &n_dims, "tensor n_dims")) return false;
  if (n_dims < 1 || n_dims > UP_GGUF_MAX_DIMS) {
    return fail(c, "tensor '%.*s': %u dimensions (expected 1 to %d)", name_len, name->data, n_dims, UP_GGUF_MAX_DIMS);
  }
  t->n_dims = (int32_t)n_dims;
  int64_t n_elements = 1;
  for (int d = 0; d < UP_GGUF_MAX_DIMS; d++) {
    uint64_t dim = 1;
    if (d < t->n_dims && !read_u64(c, &dim, "tensor dimension")) return false;
    if (dim > (uint64_t)INT64_MAX) {
      return fail(c, "tensor '%.*s': dimension %d is %" PRIu64 ", beyond int64", name_len, name->data, d, dim);
    }
    t->dims[d] = (int64_t)dim;
    if (dim != 0 && n_elements > INT64_MAX / (int64_t)dim) {
      return fail(c, "tensor '%.*s': the element count of its dimensions overflows int64", name_len, name->data);
    }
    n_elements *= (int64_t)dim;
  }
  t->n_elements = n_elements;
  if (!read_u32(c, &type_id, "tensor type")) return false;
  if (!up_ggml_type_is_known(type_id)) {
    return fail(c, "tensor '%.*s': unsupported ggml type %s (id %u; accepted: %s)", name_len, name->data,
                up_ggml_type_id_name(type_id), type_id, up_ggml_accepted_type_names());
  }
  t->type = (up_ggml_type)type_id;
  int64_t block = up_ggml_block_size(t->type);
  if (t->dims[0] % block != 0) {
    return fail(c, "tensor '%.*s': first dimension %" PRId64 " is not a multiple of the %s block size %" PRId64,
                name_len, name->data, t->dims[0], up_ggml_type_name(t->type), block);
  }
  if (!up_ggml_bytes_for(t->type, t->n_elements, &t->n_bytes)) {
    return fail(c, "tensor '%.*s': byte size of %" PRId64 " %s elements overflows", name_len, name->data, t->n_elements,
                up_ggml_type_name(t->type));
  }
  return read_u64(c, &t->offset, "tensor data offset");
}

static bool check_tensor_data(parse_ctx *c, up_gguf_tensor *t) {
  up_gguf *g = c->g;
  if (t->offset % g->alignment != 0) {
    return fail(c, "tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64, t->name,
                t->offset, g->alignment);
  }
  uint64_t space = g->size - g->data_start; /* data_start <= size when there are tensors */
  if (t->offset > space || t->n_bytes > space - t->offset) {
    /* Absolute positions, saturated where they would overflow. */
    uint64_t start = t->offset > UINT64_MAX - g->data_start ? UINT64_MAX : g->data_start + t->offset;
    uint64_t end = t->n_bytes > UINT64_MAX - start ? UINT64_MAX : start + t->n_bytes;
    return fail(c, "tensor '%s': data [%" PRIu64 "..%" PRIu64 ") lies beyond the end of the file (size %" PRIu64 ")",
                t->name, start, end, g->size);
  }
  t->data = g->base + g->data_start + t->offset;
  return true;
}

static bool parse_tensors(parse_ctx *c, uint64_t n_tensors) {
  up_gguf *g = c->g;
  if (!check_header_count(c, n_tensors, GGUF_MIN_TENSOR_INFO_BYTES, "tensors")) return false;
  up_gguf_str *names = calloc(n_tensors ? n_tensors : 1, sizeof *names);
  g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
  if (!names || !g->tensors || !table_init(&g->tensor_table, (int64_t)n_tensors)) {
    free(names);
    return fail(c, "out of memory for %" PRIu64 " tensor infos", n_tensors);
  }
  g->n_tensors = (int64_t)n_tensors;

  /* The name table points into the file, which outlives the reader's lookups. */
  uint64_t names_bytes = 0;
  bool ok = true;
  for (int64_t i = 0; ok && i < g->n_tensors; i++) {
    ok = parse_tensor_info(c, i, &names[i]);
    if (ok && table_insert(&g->tensor_table, names[i].data, names[i].len, i) >= 0) {
      ok = fail(c, "duplicate tensor name '%.*s'", shown_len(names[i]), names[i].data);
    }
    names_bytes += names[i].len + 1; /* bounded by the file size */
  }
  if (ok) {
    g->tensor_names = malloc(names_bytes ? names_bytes : 1);
    if (!g->tensor_names) ok = fail(c, "out of memory for %" PRIu64 " bytes of tensor names", names_bytes);
  }
  char *next = g->tensor_names;
  for (int64_t i = 0; ok && i < g->n_tensors; i++) {
    memcpy(next, names[i].data, names[i].len);
    next[names[i].len] = '\0';
    g->tensors[i].name = next;
    next += names[i].len + 1;
  }
  free(names);
  return ok;
}

static int compare_tensor_offsets(const void *a, const void *b) {
  const up_gguf_tensor *x = *(const up_gguf_tensor *const *)a, *y = *(const up_gguf_tensor *const *)b;
  return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Two tensors sharing bytes would each read the other's data: sorted by offset, every
 * tensor must end where (or before) the next begins. Empty tensors share nothing. */
static bool check_no_overlap(parse_ctx *c) {
  up_gguf *g = c->g;
  const up_gguf_tensor **by_offset = malloc(sizeof *by_offset * (size_t)(g->n_tensors ? g->n_tensors : 1));
  if (!by_offset) return fail(c, "out of memory for %" PRId64 " tensor offsets", g->n_tensors);
  int64_t n = 0;
  for (int64_t i = 0; i < g->n_tensors; i++)
    if (g->tensors[i].n_bytes > 0) by_offset[n++] = &g->tensors[i];
  qsort(by_offset, (size_t)n, sizeof *by_offset, compare_tensor_offsets);
  bool ok = true;
  for (int64_t i = 1; ok && i < n; i++) {
    const up_gguf_tensor *a = by_offset[i - 1], *b = by_offset[i];
    if (a->offset + a->n_bytes > b->offset) /* no overflow: both lie inside the file */
      ok = fail(c, "tensors '%s' (data offsets [%" PRIu64 "..%" PRIu64 ")) and '%s' ([%" PRIu64 "..%" PRIu64
                   ")) overlap",
                a->name, a->offset, a->offset + a->n_bytes, b->name, b->offset, b->offset + b->n_bytes);
  }
  free(by_offset);
  return ok;
}

static bool parse_data_section(parse_ctx *c) {
  up_gguf *g = c->g;
  uint64_t header_end = c->pos;
  uint64_t padding = (g->alignment - header_end % g->alignment) % g->alignment;
  if (padding > UINT64_MAX - header_end) return fail(c, "data section start overflows");
  g->data_start = header_end + padding;
  if (g->n_tensors == 0) return true;
  if (g->data_start > g->size) {
    return fail(c, "data section starts at offset %" PRIu64 " (header end %" PRIu64 " aligned to %" PRIu64
                   "), beyond the end of the file (size %" PRIu64 ")",
                g->data_start, header_end, g->alignment, g->size);
  }
  for (int64_t i = 0; i < g->n_tensors; i++) {
    if (!check_tensor_data(c, &g->tensors[i])) return false;
  }
  return check_no_overlap(c);
}

static bool parse(parse_ctx *c) {
  up_gguf *g = c->g;
  const uint8_t *magic;
  uint64_t n_tensors, n_kv;
  if (g->size < 4) return fail(c, "%" PRIu64 " bytes, too short to be a GGUF file", g->size);
  if (!take(c, 4, &magic, "magic")) return false;
  if (memcmp(magic, "GGUF", 4) != 0) {
    return fail(c, "not a GGUF file (magic bytes %02x %02x %02x %02x, expected \"GGUF\")", magic[0], magic[1],
                magic[2], magic[3]);
  }
  if (!read_u32(c, &g->version, "version")) return false;
  if (g->version == 0x02000000u || g->version == 0x03000000u) {
    return fail(c, "big-endian GGUF files are not supported");
  }
  if (g->version != 2 && g->version != 3) {
    return fail(c, "GGUF version %u is not supported (only 2 and 3)", g->version);
  }
  if (!read_u64(c, &n_tensors, "tensor count") || !read_u64(c, &n_kv, "metadata count")) return false;
  return parse_metadata(c, n_kv) && parse_alignment(c) && parse_tensors(c, n_tensors) && parse_data_section(c);
}

/* ---- open / close ------------------------------------------------------------------- */

static up_gguf *open_bytes(const uint8_t *data, uint64_t size, bool mapped, const char *name, char *err,
                           size_t err_size) {
  up_gguf *g = calloc(1, sizeof *g);
  char *name_copy = strdup(name ? name : "(buffer)");
  if (!g || !name_copy) {
    report(err, err_size, name ? name : "(buffer)", "out of memory opening a GGUF reader");
    free(g);
    free(name_copy);
    return NULL;
  }
  *g = (up_gguf){.name = name_copy, .base = data, .size = size, .mapped = mapped};
  parse_ctx c = {.g = g, .pos = 0, .err = err, .err_size = err_size};
  if (!parse(&c)) {
    if (mapped) g->mapped = false; /* the caller unmaps on failure */
    up_gguf_close(g);
    return NULL;
  }
  return g;
}

up_gguf *up_gguf_open_buffer(const void *data, size_t size, const char *name, char *err, size_t err_size) {
  if (!data && size > 0) {
    report(err, err_size, name ? name : "(buffer)", "NULL buffer of %zu bytes", size);
    return NULL;
  }
  static const uint8_t empty[1];
  return open_bytes(data ? data : empty, size, false, name, err, err_size);
}

up_gguf *up_gguf_open(const char *path, char *err, size_t err_size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    report(err, err_size, path, "cannot open: %s", strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    report(err, err_size, path, "cannot stat: %s", strerror(errno));
    close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    report(err, err_size, path, "not a regular file");
    close(fd);
    return NULL;
  }
  if (st.st_size < 4) {
    report(err, err_size, path, "%lld bytes, too short to be a GGUF file", (long long)st.st_size);
    close(fd);
    return NULL;
  }
  size_t size = (size_t)st.st_size;
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  if (close(fd) != 0 && map != MAP_FAILED) {
    report(err, err_size, path, "cannot close: %s", strerror(errno));
    munmap(map, size);
    return NULL;
  }
  if (map == MAP_FAILED) {
    report(err, err_size, path, "cannot map %zu bytes: %s", size, strerror(map_errno));
    return NULL;
  }
  up_gguf *g = open_bytes(map, size, true, path, err, err_size);
  if (!g) munmap(map, size);
  return g;
}

void up_gguf_close(up_gguf *g) {
  if (!g) return;
  for (int64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_pos);
  free(g->kv);
  free(g->key_table.slots);
  free(g->tensors);
  free(g->tensor_table.slots);
  free(g->tensor_names);
  if (g->mapped) munmap((void *)g->base, g->size);
  free(g->name);
  free(g);
}

uint32_t up_gguf_version(const up_gguf *g) { return g->version; }
const char *up_gguf_name(const up_gguf *g) { return g->name; }
uint64_t up_gguf_alignment(const up_gguf *g) { return g->alignment; }
uint64_t up_gguf_data_offset(const up_gguf *g) { return g->data_start; }

/* ---- metadata getters --------------------------------------------------------------- */

/* A numeric value of any type, widened: is_float picks f, else is_signed picks i or u. */
typedef struct number {
  bool is_float, is_signed;
  double f;
  int64_t i;
  uint64_t u;
} number;

static bool load_number(const uint8_t *p, up_gguf_value_type type, number *out) {
  *out = (number){0};
  switch (type) {
  case UP_GGUF_U8: out->u = p[0]; return true;
  case UP_GGUF_U16: out->u = load_u16(p); return true;
  case UP_GGUF_U32: out->u = load_u32(p); return true;
  case UP_GGUF_U64: out->u = load_u64(p); return true;
  case UP_GGUF_I8: out->i = (int8_t)p[0]; break;
  case UP_GGUF_I16: out->i = (int16_t)load_u16(p); break;
  case UP_GGUF_I32: out->i = (int32_t)load_u32(p); break;
  case UP_GGUF_I64: out->i = (int64_t)load_u64(p); break;
  case UP_GGUF_F32: {
    uint32_t bits = load_u32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    out->is_float = true;
    out->f = f;
    return true;
  }
  case UP_GGUF_F64: {
    uint64_t bits = load_u64(p);
    memcpy(&out->f, &bits, sizeof out->f);
    out->is_float = true;
    return true;
  }
  default: return false; /* bool, string, array */
  }
  out->is_signed = true; /* the signed cases break out of the switch */
  return true;
}

/* An integer in [lo, hi]; floats never convert to integers. */
static bool number_to_int(const number *n, int64_t lo, uint64_t hi, int64_t *out_signed, uint64_t *out_unsigned) {
  if (n->is_float) return false;
  if (n->is_signed) {
    if (n->i < lo || (n->i > 0 && (uint64_t)n->i > hi)) return false;
    if (out_signed) *out_signed = n->i;
    if (out_unsigned) *out_unsigned = (uint64_t)n->i;
    return true;
  }
  if (n->u > hi) return false;
  if (out_signed) *out_signed = (int64_t)n->u;
  if (out_unsigned) *out_unsigned = n->u;
  return true;
}

/* A float within float range (infinities and NaN pass through); integers always fit. */
static bool number_to_f32(const number *n, float *out) {
  if (n->is_float) {
    if (isfinite(n->f) && fabs(n->f) > FLT_MAX) return false;
    *out = (float)n->f;
  } else {
    *out = n->is_signed ? (float)n->i : (float)n->u;
  }
  return true;
}

bool up_gguf_has_key(const up_gguf *g, const char *key) { return find_kv(g, key) != NULL; }

static bool get_scalar_number(const up_gguf *g, const char *key, number *out) {
  const gguf_kv *kv = find_kv(g, key);
  return kv && load_number(g->base + kv->value_pos, kv->type, out);
}

bool up_gguf_get_u32(const up_gguf *g, const char *key, uint32_t *out) {
  number n;
  uint64_t value;
  if (!get_scalar_number(g, key, &n) || !number_to_int(&n, 0, UINT32_MAX, NULL, &value)) return false;
  *out = (uint32_t)value;
  return true;
}

bool up_gguf_get_f32(const up_gguf *g, const char *key, float *out) {
  number n;
  return get_scalar_number(g, key, &n) && number_to_f32(&n, out);
}

bool up_gguf_get_bool(const up_gguf *g, const char *key, bool *out) {
  const gguf_kv *kv = find_kv(g, key);
  if (!kv || kv->type != UP_GGUF_BOOL) return false;
  *out = g->base[kv->value_pos] != 0;
  return true;
}

/* The string whose length prefix is at pos (validated while parsing). */
static up_gguf_str str_at(const up_gguf *g, uint64_t pos) {
  return (up_gguf_str){.data = (const char *)g->base + pos + 8, .len = load_u64(g->base + pos)};
}

bool up_gguf_get_str(const up_gguf *g, const char *key, up_gguf_str *out) {
  const gguf_kv *kv = find_kv(g, key);
  if (!kv || kv->type != UP_GGUF_STRING) return false;
  *out = str_at(g, kv->value_pos);
  return true;
}

bool up_gguf_get_array_info(const up_gguf *g, const char *key, up_gguf_value_type *elem_type, uint64_t *count) {
  const gguf_kv *kv = find_kv(g, key);
  if (!kv || kv->type != UP_GGUF_ARRAY) return false;
  if (elem_type) *elem_type = kv->elem_type;
  if (count) *count = kv->count;
  return true;
}

bool up_gguf_get_array_str(const up_gguf *g, const char *key, uint64_t i, up_gguf_str *out) {
  const gguf_kv *kv = find_kv(g, key);
  if (!kv || kv->type != UP_GGUF_ARRAY || kv->elem_type != UP_GGUF_STRING || i >= kv->count) return false;
  *out = str_at(g, kv->str_pos[i]);
  return true;
}

/* The numeric array under key when it holds exactly count elements. */
static const gguf_kv *numeric_array(const up_gguf *g, const char *key, uint64_t count) {
  const gguf_kv *kv = find_kv(g, key);
  if (!kv || kv->type != UP_GGUF_ARRAY || kv->count != count) return NULL;
  if (kv->elem_type == UP_GGUF_BOOL || scalar_bytes(kv->elem_type) == 0) return NULL;
  return kv;
}

/* Element converters of the numeric array getters: false when the element does not fit. */
typedef bool (*number_converter)(const number *n, void *out);

static bool convert_to_f32(const number *n, void *out) { return number_to_f32(n, out); }

static bool convert_to_i32(const number *n, void *out) {
  int64_t value;
  if (!number_to_int(n, INT32_MIN, INT32_MAX, &value, NULL)) return false;
  *(int32_t *)out = (int32_t)value;
  return true;
}

/* Every element is checked before any is written, so out is untouched on failure. */
static bool get_numeric_array(const up_gguf *g, const char *key, uint64_t count, number_converter convert,
                              void *out, size_t out_elem_bytes) {
  const gguf_kv *kv = numeric_array(g, key, count);
  if (!kv) return false;
  uint64_t stride = scalar_bytes(kv->elem_type);
  const uint8_t *p = g->base + kv->value_pos;
  number n;
  union { float f; int32_t i; } scratch;
  for (uint64_t i = 0; i < count; i++) {
    if (!load_number(p + i * stride, kv->elem_type, &n) || !convert(&n, &scratch)) return false;
  }
  for (uint64_t i = 0; i < count; i++) {
    load_number(p + i * stride, kv->elem_type, &n);
    convert(&n, (char *)out + i * out_elem_bytes);
  }
  return true;
}

bool up_gguf_get_array_f32(const up_gguf *g, const char *key, float *out, uint64_t count) {
  return get_numeric_array(g, key, count, convert_to_f32, out, sizeof *out);
}

bool up_gguf_get_array_i32(const up_gguf *g, const char *key, int32_t *out, uint64_t count) {
  return get_numeric_array(g, key, count, convert_to_i32, out, sizeof *out);
}

bool up_gguf_get_array_bool(const up_gguf *g, const char *key, bool *out, uint64_t count) {
  const gguf_kv *kv = find_kv(g, key);
  if (!kv || kv->type != UP_GGUF_ARRAY || kv->elem_type != UP_GGUF_BOOL || kv->count != count) return false;
  for (uint64_t i = 0; i < count; i++) out[i] = g->base[kv->value_pos + i] != 0; /* 0 or 1: checked on parsing */
  return true;
}

int64_t up_gguf_kv_count(const up_gguf *g) { return g->n_kv; }

bool up_gguf_kv_at(const up_gguf *g, int64_t index, up_gguf_str *key, up_gguf_value_type *type) {
  if (!g || index < 0 || index >= g->n_kv) return false;
  if (key) *key = g->kv[index].key;
  if (type) *type = g->kv[index].type;
  return true;
}

const char *up_gguf_value_type_name(up_gguf_value_type type) { return value_type_name((uint32_t)type); }

/* ---- tensors ---------------------------------------------------------------------- */

int64_t up_gguf_tensor_count(const up_gguf *g) { return g->n_tensors; }

const up_gguf_tensor *up_gguf_tensor_at(const up_gguf *g, int64_t index) {
  return g && index >= 0 && index < g->n_tensors ? &g->tensors[index] : NULL;
}

const up_gguf_tensor *up_gguf_find_tensor(const up_gguf *g, const char *name) {
  if (!g || !name) return NULL;
  const name_slot *slot = table_find(&g->tensor_table, name, strlen(name));
  return slot ? &g->tensors[slot->index] : NULL;
}

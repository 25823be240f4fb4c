/* uniprefill_window.c — UniPrefill's window=original: per KV slot and sliding layer, the
 * original positions of the cache entries, from which each row's first visible entry
 * follows; then the backend's bounded attention. Entries are appended in position
 * order (kept rows keep their order, decode rows come later), so a binary search finds
 * the first entry inside a row's window. May not touch the engine's memory: it only
 * mirrors what the forward appended there. */
#include "engine/methods/uniprefill_window.h"

#include <stdlib.h>

#include "core/fatal.h"
#include "kernels/uniprefill_ops.h"

/* The positions of one slot's entries at one layer. */
typedef struct entry_list {
  int32_t *positions;
  int32_t len, cap;
} entry_list;

struct up_position_window {
  up_backend *be;
  entry_list *lists; /* [n_slots][UP_MAX_LAYERS] */
  int32_t n_slots;
  int32_t *row_positions, *first_entry; /* host, [row_cap] */
  int32_t *first_entry_be;              /* backend memory, [row_cap] */
  int32_t row_cap;
};

up_position_window *up_position_window_create(up_backend *be) {
  up_position_window *pw = up_calloc_or_die(1, sizeof *pw, "window=original state");
  pw->be = be;
  return pw;
}

void up_position_window_destroy(up_position_window *pw) {
  if (!pw) return;
  for (int64_t i = 0; i < (int64_t)pw->n_slots * UP_MAX_LAYERS; ++i) free(pw->lists[i].positions);
  free(pw->lists);
  free(pw->row_positions);
  free(pw->first_entry);
  if (pw->first_entry_be) pw->be->ops->free(pw->be, pw->first_entry_be);
  free(pw);
}

static void *grow(void *ptr, size_t bytes, const char *what) {
  void *p = realloc(ptr, bytes ? bytes : 1);
  if (!p) UP_FATAL("out of memory for %s (%zu bytes)", what, bytes);
  return p;
}

static entry_list *list_of(up_position_window *pw, int32_t slot, int32_t layer) {
  UP_ASSERT(slot >= 0 && layer >= 0 && layer < UP_MAX_LAYERS, "slot %d, layer %d", (int)slot, (int)layer);
  if (slot >= pw->n_slots) {
    const int32_t n = slot + 1;
    pw->lists = grow(pw->lists, sizeof(entry_list) * (size_t)n * UP_MAX_LAYERS, "entry position lists");
    for (int64_t i = (int64_t)pw->n_slots * UP_MAX_LAYERS; i < (int64_t)n * UP_MAX_LAYERS; ++i)
      pw->lists[i] = (entry_list){0};
    pw->n_slots = n;
  }
  return &pw->lists[(int64_t)slot * UP_MAX_LAYERS + layer];
}

static void ensure_rows(up_position_window *pw, int32_t rows) {
  if (rows <= pw->row_cap) return;
  pw->row_positions = grow(pw->row_positions, sizeof(int32_t) * (size_t)rows, "row positions");
  pw->first_entry = grow(pw->first_entry, sizeof(int32_t) * (size_t)rows, "first visible entries");
  if (pw->first_entry_be) pw->be->ops->free(pw->be, pw->first_entry_be);
  pw->first_entry_be = pw->be->ops->alloc(pw->be, sizeof(int32_t) * (size_t)rows, "first visible entries");
  pw->row_cap = rows;
}

double up_position_window_first_entries(const int32_t *entry_positions, int32_t prior, const int32_t *row_positions,
                                        int32_t n, int32_t window, int32_t *first_entry) {
  double pairs = 0.0;
  for (int32_t t = 0; t < n; ++t) {
    const int64_t lowest = (int64_t)row_positions[t] - window + 1; /* the first position inside the window */
    int32_t lo = 0, hi = prior + t; /* the row's own entry is inside: the answer is in [lo, hi] */
    while (lo < hi) {
      const int32_t mid = lo + (hi - lo) / 2;
      if (entry_positions[mid] < lowest) lo = mid + 1;
      else hi = mid;
    }
    first_entry[t] = lo;
    pairs += (double)(prior + t - lo + 1);
  }
  return pairs;
}

double up_position_window_attention(up_position_window *pw, up_backend *be, const up_method_layer *at, void *out) {
  const up_bounded_attention_fn attend = up_bounded_attention_kernel(be);
  if (!attend) UP_FATAL("the %s backend has no %s kernel", be->ops->name, UP_UNIPREFILL_BOUNDED_ATTENTION_KERNEL);
  const int32_t n_rows = at->batch->n_tokens;
  ensure_rows(pw, n_rows);
  be->ops->download_i32(be, pw->row_positions, at->positions, (size_t)n_rows);
  double pairs = 0.0;
  bool undropped = true; /* every sequence's entry e is at position e: no drop yet */
  for (int32_t s = 0; s < at->n_seqs; ++s) {
    const int32_t first_row = at->cu_seqlens_host[s], rows = at->cu_seqlens_host[s + 1] - first_row;
    const int32_t prior = at->kv_lens_host[s] - rows;
    entry_list *list = list_of(pw, at->slots_host[s], at->layer);
    if (prior == 0) list->len = 0; /* a new request in this slot */
    if (list->len != prior)
      UP_FATAL("window=original: slot %d layer %d holds %d entries, the positions of %d are known (a step of this "
               "sequence bypassed the method)", (int)at->slots_host[s], (int)at->layer, (int)prior, (int)list->len);
    if (list->len + rows > list->cap) {
      list->cap = 2 * (list->len + rows);
      list->positions = grow(list->positions, sizeof(int32_t) * (size_t)list->cap, "entry positions");
    }
    for (int32_t t = 0; t < rows; ++t) {
      const int32_t p = pw->row_positions[first_row + t];
      if (list->len > 0 && p <= list->positions[list->len - 1])
        UP_FATAL("window=original: slot %d layer %d: entry at position %d after one at %d", (int)at->slots_host[s],
                 (int)at->layer, (int)p, (int)list->positions[list->len - 1]);
      list->positions[list->len++] = p;
    }
    pairs += up_position_window_first_entries(list->positions, prior, pw->row_positions + first_row, rows,
                                              at->window, pw->first_entry + first_row);
    undropped = undropped && (list->len == 0 || list->positions[list->len - 1] == list->len - 1);
  }
  /* Positions ascend from 0 without gaps until a drop, so W positions are W entries:
   * the backend's own windowed attention (the fast kernel on a GPU) gives the same. */
  if (undropped) {
    be->ops->attention(be, out, at->qkv, at->pool, at->batch, at->shape, at->window);
    return pairs;
  }
  be->ops->upload_i32(be, pw->first_entry_be, pw->first_entry, (size_t)n_rows);
  attend(be, out, at->qkv, at->pool, at->batch, at->shape, pw->first_entry_be);
  return pairs;
}

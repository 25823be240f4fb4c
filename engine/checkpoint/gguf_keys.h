/* gguf_keys.h — reading an architecture's hyper-parameter keys from a GGUF file: the
 * architecture-prefixed key name ("gemma3" + "attention.sliding_window"), and optional
 * keys that fall back to a default when absent but are validated when present, so a key
 * that is there with a wrong type or value is an error naming the file and the key,
 * never silently the default. Only reads the metadata (engine/checkpoint/gguf.h); which
 * keys an architecture has and what they mean belongs to the architecture's loader. */
#ifndef UP_GGUF_KEYS_H
#define UP_GGUF_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/checkpoint/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UP_GGUF_KEY_MAX 128 /* longest key name these helpers build */

/* "<general.architecture>.<suffix>" (e.g. "gemma3.rope.freq_base_swa") into out
 * (UP_GGUF_KEY_MAX bytes). False with a message when general.architecture is missing,
 * not a string, or the name does not fit. */
bool up_gguf_arch_key(const up_gguf *g, const char *suffix, char *out, size_t out_size, char *err, size_t err_size);

/* An integer key in [min, max]; fallback when absent. *present (may be NULL) says which.
 * False with a message naming the file and key when it is present but not an integer in
 * range. */
bool up_gguf_u32_or_default(const up_gguf *g, const char *key, uint32_t fallback, uint32_t min, uint32_t max,
                            uint32_t *out, bool *present, char *err, size_t err_size);

/* A positive finite number key; fallback when absent (same contract). */
bool up_gguf_positive_f32_or_default(const up_gguf *g, const char *key, float fallback, float *out, bool *present,
                                     char *err, size_t err_size);

/* A string key copied NUL-terminated into out; "" when absent (same contract: present
 * but not a string, holding a NUL, or longer than out_size - 1 is an error). */
bool up_gguf_str_or_empty(const up_gguf *g, const char *key, char *out, size_t out_size, bool *present, char *err,
                          size_t err_size);

#ifdef __cplusplus
}
#endif

#endif

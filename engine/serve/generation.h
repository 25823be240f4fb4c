/* generation.h — greedy generation for given prompts, for evaluations that need what a
 * model actually answers (not only how fast): a packed prefill of a group of prompts
 * through a method, the logits each prompt's last position produces, then batched
 * greedy decode until a stop token or a length cap. Owns its KV pool, cache and
 * workspace, sized once for the largest group it will see. */
#ifndef UP_GENERATION_H
#define UP_GENERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/methods/method.h"
#include "engine/model/model.h"

typedef struct up_generator up_generator;

/* Room for max_seqs prompts of at most max_prompt tokens each, plus max_new generated
 * tokens each; the KV pool holds all of them at full length (evaluation batches are
 * small; memory is checked against the backend before allocating). NULL with a
 * message when the backend lacks the memory. */
up_generator *up_generator_create(const up_model *model, int32_t max_seqs, int32_t max_prompt, int32_t max_new,
                                  char *err, size_t err_size);
void up_generator_destroy(up_generator *gen);
/* Bytes of backend memory the generator holds (KV pool and workspace). */
int64_t up_generator_bytes(const up_generator *gen);

typedef struct up_generation {
  float *first_logits;     /* [vocab] logits at the prompt's last position */
  int32_t *tokens;         /* [max_new] generated ids, stop token included when one was hit */
  int32_t n_tokens;
  bool stopped;            /* a stop token ended it (else the length cap or non_finite) */
  bool non_finite;         /* the logits turned NaN or inf (non-finite activations): generation
                            * ended there, tokens holds what came before (none when it was the
                            * prefill's), and first_logits may hold the non-finite values */
  int32_t *layer_rows;     /* [n_layers] prompt rows entering each layer (drops show here) */
  double *layer_density;   /* [n_layers] attention density of the prefill at each layer: computed over
                            * causal query-key pairs (method.h's up_attn_work), summed over the batch's
                            * prompts, since a layer's work is recorded per packed batch (one prompt per
                            * call gives the prompt's own); NaN where a layer saw no causal pairs (a
                            * linear-attention layer) */
  /* Diagnostics, NULL unless up_generator_set_diagnostics asked for them: */
  float *lead_logits;      /* [n_lead][vocab] logits of steps 0 .. n_lead - 1: every step up to and
                            * including the first whose token carries content */
  int32_t n_lead;
  int32_t *prompt_drops_survived; /* [prompt tokens] drop layers each prompt token survived
                                   * (up_forward_out.row_drops_survived) */
} up_generation;

/* Evaluation diagnostics, off until set (the serving sweep never sets them, and they
 * cost nothing there). content_tokens ([vocab], 1 where a token carries content, owned
 * by the caller and alive while the generator runs; NULL: off) keeps each answer's
 * logits up to its first content token; track_drops reports per prompt token how many
 * of the method's drop layers it survived (one download of positions per drop layer). */
void up_generator_set_diagnostics(up_generator *gen, const uint8_t *content_tokens, bool track_drops);

/* Generate for n prompts (n <= max_seqs) at once. out[i] arrays are allocated here and
 * freed by up_generation_free. Stop ids end a sequence (n_stop may be 0); so do
 * non-finite logits, for that sequence alone (out[i].non_finite). */
void up_generator_run(up_generator *gen, const up_method *method, const int32_t *const *prompts,
                      const int32_t *prompt_lens, int32_t n, int32_t max_new, const int32_t *stop_ids,
                      int32_t n_stop, up_generation *out);
void up_generation_free(up_generation *g);

#endif

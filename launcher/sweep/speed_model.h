/* speed_model.h — what a point's TTFT speedup over dense should be, given the tokens
 * each layer actually processed: linear work (projections, MLP) scales with the tokens
 * a layer sees, attention with their square. The measured speedup beside it says how
 * much of the saving the implementation turns into time. */
#ifndef UP_SPEED_MODEL_H
#define UP_SPEED_MODEL_H

#include <stdint.h>

#include "engine/methods/method.h"
#include "engine/model/model_config.h"
#include "engine/serve/records.h"

/* The FLOPs of the finished requests' prompts with every token through every layer, divided by the FLOPs they cost with the
 * rows recorded per layer. layer_tokens[i][l] is the number of request i's prompt tokens
 * entering layer l; a drop layer's MLP sees the tokens entering the next layer (the
 * kept_len of the record after the last layer). NaN when no request finished. */
double up_speed_model_predicted_speedup(const up_model_config *cfg, const up_request_record *records,
                                        const int32_t *layer_tokens, int32_t n_requests);

/* The same with layer l's attention FLOPs scaled by layer_density[l] (NULL: 1): the
 * point's sweep passes up_speed_model_layer_work, so a sparse-attention method's
 * attention term follows the tiles its kernel computes plus its estimation
 * (../shared/BASELINES.md 4). */
double up_speed_model_predicted_speedup_sparse(const up_model_config *cfg, const up_request_record *records,
                                               const int32_t *layer_tokens, int32_t n_requests,
                                               const double *layer_density);

/* work_density[l] = sum of (tiles + estimate_flops / FLOPs of one causal pair) / sum of
 * causal pairs at layer l over n_steps step rows of work [n_steps][n_layers]
 * (method.h's up_attn_work; 1 where no causal work was recorded): the attention cost the
 * layer paid, as a fraction of dense causal attention. Dense and UniPrefill layers give
 * 1 (tiles = computed = causal, nothing estimated); sliding-window layers give 1, as
 * their window is already in the layer's attention FLOPs and no method changes it. */
void up_speed_model_layer_work(const up_model_config *cfg, const up_attn_work *work, int64_t n_steps,
                               double *work_density);

#endif

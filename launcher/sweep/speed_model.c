/* speed_model.c — the FLOP model behind the predicted speedup (see speed_model.h). */
#include "launcher/sweep/speed_model.h"

#include <math.h>

#include "engine/serve/request.h"

/* FLOPs of one request through every layer, given the tokens entering each layer and
 * the tokens left after the last one. */
static double request_flops(const up_model_config *cfg, const int32_t *entering, int32_t kept_after_last) {
  const double h = cfg->hidden, q_dim = (double)cfg->n_heads * cfg->head_dim;
  const double attn_block_params = h * up_model_config_qkv_dim(cfg) + h * q_dim;
  const double mlp_params = 3.0 * h * cfg->intermediate;
  double flops = 2.0 * h * cfg->vocab; /* LM head on the last token */
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    const double n = entering[l];
    const double after = l + 1 < cfg->n_layers ? entering[l + 1] : kept_after_last;
    flops += 2.0 * attn_block_params * n + 2.0 * n * n * q_dim + 2.0 * mlp_params * after;
  }
  return flops;
}

double up_speed_model_predicted_speedup(const up_model_config *cfg, const up_request_record *records,
                                        const int32_t *layer_tokens, int32_t n_requests) {
  double dense = 0.0, actual = 0.0;
  for (int32_t i = 0; i < n_requests; ++i) {
    if (records[i].status != UP_REQUEST_FINISHED) continue;
    /* Dense through the same count, so the model's own simplifications cancel. */
    int32_t all_tokens[UP_MAX_LAYERS];
    for (int32_t l = 0; l < cfg->n_layers; ++l) all_tokens[l] = records[i].prompt_len;
    dense += request_flops(cfg, all_tokens, records[i].prompt_len);
    actual += request_flops(cfg, layer_tokens + (int64_t)i * cfg->n_layers, records[i].kept_len);
  }
  return actual > 0.0 ? dense / actual : NAN;
}

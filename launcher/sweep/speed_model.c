/* speed_model.c — the predicted speedup (see speed_model.h) from the per-layer
 * parameters and attention FLOPs of engine/model/layer_cost.h, with each layer's
 * attention scaled by the work a sparse-attention method did there (its kernel's tiles
 * and its estimation). */
#include "launcher/sweep/speed_model.h"

#include <math.h>

#include "engine/model/arch.h"
#include "engine/model/layer_cost.h"
#include "engine/serve/request.h"

/* FLOPs of one request through every layer, given the tokens entering each layer and
 * the tokens left after the last one: each layer's GEMMs at the tokens they see (a
 * drop layer's MLP after the drop) and its attention over the tokens entering it. */
static double request_flops(const up_model_config *cfg, const up_layer_cost *costs, const int32_t *entering,
                            int32_t kept_after_last, const double *layer_density) {
  double flops = 2.0 * cfg->hidden * (double)cfg->vocab; /* LM head on the last token */
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    const double n = entering[l];
    const double after = l + 1 < cfg->n_layers ? entering[l + 1] : kept_after_last;
    const double density = layer_density ? layer_density[l] : 1.0;
    flops += (2.0 * (double)costs[l].mixer_gemm_params + costs[l].mixer_token_flops) * n +
             density * up_layer_attention_flops(cfg, l, entering[l], entering[l]) +
             2.0 * (double)costs[l].ffn_active_params * after;
  }
  return flops;
}

double up_speed_model_predicted_speedup(const up_model_config *cfg, const up_request_record *records,
                                        const int32_t *layer_tokens, int32_t n_requests) {
  return up_speed_model_predicted_speedup_sparse(cfg, records, layer_tokens, n_requests, NULL);
}

void up_speed_model_layer_work(const up_model_config *cfg, const up_attn_work *work, int64_t n_steps,
                               double *work_density) {
  /* an attention pair costs 4 q_dim FLOPs (QK and PV), as up_layer_attention_flops counts */
  const double pair_flops = 4.0 * (double)up_dim_size(cfg, UP_DIM_Q);
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    /* up_layer_attention_flops already counts a sliding layer's window, and every method
     * leaves those layers dense: scaling them again would count the window twice */
    if (up_layer_window(cfg, l) > 0) {
      work_density[l] = 1.0;
      continue;
    }
    double cost = 0.0, causal = 0.0;
    for (int64_t s = 0; s < n_steps; ++s) {
      const up_attn_work *w = &work[s * cfg->n_layers + l];
      cost += w->tiles + w->estimate_flops / pair_flops;
      causal += w->causal;
    }
    work_density[l] = causal > 0.0 ? cost / causal : 1.0;
  }
}

double up_speed_model_predicted_speedup_sparse(const up_model_config *cfg, const up_request_record *records,
                                               const int32_t *layer_tokens, int32_t n_requests,
                                               const double *layer_density) {
  up_layer_cost costs[UP_MAX_LAYERS];
  for (int32_t l = 0; l < cfg->n_layers; ++l) up_layer_cost_of(cfg, UP_DTYPE_F32, l, &costs[l]);
  double dense = 0.0, actual = 0.0;
  for (int32_t i = 0; i < n_requests; ++i) {
    if (records[i].status != UP_REQUEST_FINISHED) continue;
    /* Dense through the same count, so the model's own simplifications cancel. */
    int32_t all_tokens[UP_MAX_LAYERS];
    for (int32_t l = 0; l < cfg->n_layers; ++l) all_tokens[l] = records[i].prompt_len;
    dense += request_flops(cfg, costs, all_tokens, records[i].prompt_len, NULL);
    actual += request_flops(cfg, costs, layer_tokens + (int64_t)i * cfg->n_layers, records[i].kept_len, layer_density);
  }
  return actual > 0.0 ? dense / actual : NAN;
}

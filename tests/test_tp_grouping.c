/* test_tp_grouping.c — the DP x TP placement rule (launcher/parallel/tp_grouping.h) on
 * made-up host tables, since CI has one host: slot-ordered and interleaved
 * (--map-by node) launches, hosts whose ranks do not split into groups (refused, or
 * consecutive world ranks with --tp-cross-node), and on random tables the invariants
 * every placement must keep. Also the check of --tp against a model's heads. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "core/rng.h"
#include "engine/model/model_config.h"
#include "launcher/cli.h"
#include "launcher/parallel/tp_grouping.h"
#include "launcher/run_setup.h"

enum { A = 11, B = 22, C = 33 };

static up_tp_place place_of(const uint64_t *hosts, int world, int tp, bool cross, int rank) {
  up_tp_place p;
  int bad_rank = -1, bad_count = -1;
  cr_assert(up_tp_place_rank(hosts, world, tp, cross, rank, &p, &bad_rank, &bad_count), "rank %d not placed", rank);
  return p;
}

Test(tp_grouping, slot_ordered_hosts_give_consecutive_groups) {
  const uint64_t hosts[8] = {A, A, A, A, B, B, B, B};
  for (int r = 0; r < 8; ++r) {
    const up_tp_place p = place_of(hosts, 8, 4, false, r);
    cr_expect_eq(p.tp_rank, r % 4, "rank %d", r);
    cr_expect_eq(p.dp_rank, r / 4, "rank %d", r);
    cr_expect_not(p.spans_hosts);
  }
}

Test(tp_grouping, interleaved_ranks_stay_on_their_host) {
  /* mpirun --map-by node on two hosts: world-rank arithmetic would put every group
   * across both; the host table keeps A's ranks 0,2,4,6 together. */
  const uint64_t hosts[8] = {A, B, A, B, A, B, A, B};
  const int want_tp4[8] = {0, 0, 1, 1, 2, 2, 3, 3}, want_dp4[8] = {0, 1, 0, 1, 0, 1, 0, 1};
  /* tp 2: A's {0,2} and {4,6}, B's {1,3} and {5,7}, numbered by first world rank. */
  const int want_tp2[8] = {0, 0, 1, 1, 0, 0, 1, 1}, want_dp2[8] = {0, 1, 0, 1, 2, 3, 2, 3};
  for (int r = 0; r < 8; ++r) {
    const up_tp_place p4 = place_of(hosts, 8, 4, false, r), p2 = place_of(hosts, 8, 2, false, r);
    cr_expect_eq(p4.tp_rank, want_tp4[r], "tp 4, rank %d: tp rank %d", r, p4.tp_rank);
    cr_expect_eq(p4.dp_rank, want_dp4[r], "tp 4, rank %d: dp rank %d", r, p4.dp_rank);
    cr_expect_eq(p2.tp_rank, want_tp2[r], "tp 2, rank %d: tp rank %d", r, p2.tp_rank);
    cr_expect_eq(p2.dp_rank, want_dp2[r], "tp 2, rank %d: dp rank %d", r, p2.dp_rank);
    cr_expect_not(p4.spans_hosts);
  }
}

Test(tp_grouping, group_of_one_is_every_rank_alone) {
  const uint64_t hosts[5] = {A, B, A, C, B};
  for (int r = 0; r < 5; ++r) {
    const up_tp_place p = place_of(hosts, 5, 1, false, r);
    cr_expect_eq(p.tp_rank, 0);
    cr_expect_eq(p.dp_rank, r);
  }
}

Test(tp_grouping, host_that_does_not_split_is_refused_or_crossed) {
  /* Host A runs 3 ranks: groups of 2 cannot stay inside hosts. */
  const uint64_t hosts[4] = {A, A, A, B};
  up_tp_place p;
  int bad_rank = -1, bad_count = -1;
  cr_assert_not(up_tp_place_rank(hosts, 4, 2, false, 1, &p, &bad_rank, &bad_count));
  cr_expect_eq(bad_rank, 0);
  cr_expect_eq(bad_count, 3);
  for (int r = 0; r < 4; ++r) { /* crossing allowed: consecutive world ranks, {2,3} spans A and B */
    p = place_of(hosts, 4, 2, true, r);
    cr_expect_eq(p.tp_rank, r % 2);
    cr_expect_eq(p.dp_rank, r / 2);
    cr_expect(p.spans_hosts);
  }
}

Test(tp_grouping, group_larger_than_a_host_is_refused) {
  const uint64_t hosts[4] = {A, A, B, B};
  up_tp_place p;
  int bad_rank = -1, bad_count = -1;
  cr_assert_not(up_tp_place_rank(hosts, 4, 4, false, 3, &p, &bad_rank, &bad_count));
  cr_expect_eq(bad_rank, 0);
  cr_expect_eq(bad_count, 2);
  p = place_of(hosts, 4, 4, true, 3);
  cr_expect_eq(p.tp_rank, 3);
  cr_expect_eq(p.dp_rank, 0);
  cr_expect(p.spans_hosts);
}

/* Random tables whose hosts all split: every group has tp members on one host with tp
 * ranks 0..tp-1 once each, groups are numbered 0..dp-1 by first world rank, and each
 * host's ranks fill groups in world-rank order. */
Test(tp_grouping, random_tables_keep_the_invariants) {
  enum { WORLD = 24 };
  const int tps[] = {1, 2, 3, 4, 6};
  for (uint64_t trial = 0; trial < 200; ++trial) {
    const int tp = tps[trial % 5];
    /* Deal WORLD / tp groups' worth of slots to up to 3 hosts, then shuffle the ranks. */
    uint64_t hosts[WORLD];
    for (int g = 0; g < WORLD / tp; ++g) {
      const uint64_t host = A + 11 * (up_rng_u64(3, trial, (uint64_t)g) % 3);
      for (int k = 0; k < tp; ++k) hosts[g * tp + k] = host;
    }
    for (int i = WORLD - 1; i > 0; --i) {
      const int j = (int)(up_rng_u64(4, trial, (uint64_t)i) % (uint64_t)(i + 1));
      const uint64_t t = hosts[i];
      hosts[i] = hosts[j];
      hosts[j] = t;
    }
    up_tp_place places[WORLD];
    for (int r = 0; r < WORLD; ++r) places[r] = place_of(hosts, WORLD, tp, false, r);
    int next_group = 0;
    for (int r = 0; r < WORLD; ++r) {
      cr_assert_not(places[r].spans_hosts);
      if (places[r].tp_rank != 0) continue;
      cr_assert_eq(places[r].dp_rank, next_group, "trial %llu: group led by rank %d", (unsigned long long)trial, r);
      ++next_group;
      int members = 0, seen_tp = 0;
      for (int q = 0; q < WORLD; ++q) {
        if (places[q].dp_rank != places[r].dp_rank) continue;
        cr_assert_eq(hosts[q], hosts[r], "trial %llu: group %d spans hosts", (unsigned long long)trial,
                     places[r].dp_rank);
        cr_assert_geq(q, r, "a group's leader is its first world rank");
        seen_tp |= 1 << places[q].tp_rank;
        ++members;
      }
      cr_assert_eq(members, tp);
      cr_assert_eq(seen_tp, (1 << tp) - 1);
    }
    cr_assert_eq(next_group, WORLD / tp);
  }
}

Test(tp_grouping, tp_must_split_the_attention_heads) {
  up_options opt;
  up_options_default(&opt);
  up_model_config cfg = *up_model_preset_find("llama-3.1-8b"); /* 32 query heads, 8 KV heads */
  char err[512] = "";
  const int32_t fits[] = {1, 2, 4, 8, 16, 32};
  for (int i = 0; i < 6; ++i) {
    opt.n_tp = 1;
    opt.tp[0] = fits[i];
    cr_expect(up_run_check_tp_heads(&opt, &cfg, err, sizeof err), "--tp %d: %s", fits[i], err);
  }
  opt.n_tp = 2;
  opt.tp[0] = 2;
  opt.tp[1] = 3; /* any value of the list counts */
  cr_expect_not(up_run_check_tp_heads(&opt, &cfg, err, sizeof err));
  cr_expect(strstr(err, "--tp 3 does not divide") && strstr(err, "32 query heads"), "%s", err);
  cfg.n_heads = 24;
  cfg.n_kv_heads = 6; /* 4 divides the query heads, but 6 KV heads neither split over 4 nor replicate */
  opt.n_tp = 1;
  opt.tp[0] = 4;
  cr_expect_not(up_run_check_tp_heads(&opt, &cfg, err, sizeof err));
  cr_expect(strstr(err, "6 KV heads") != NULL, "%s", err);
  opt.tp[0] = 12; /* replicated: each KV head on two ranks */
  cr_expect(up_run_check_tp_heads(&opt, &cfg, err, sizeof err), "%s", err);
}

/* tp_grouping.c — the DP x TP placement rule of tp_grouping.h. Quadratic in the world
 * size, which is a few thousand ranks at most, once at start-up. */
#include "launcher/parallel/tp_grouping.h"

/* Rank r's index among the ranks of its host. */
static int local_index(const uint64_t *host_of_rank, int r) {
  int local = 0;
  for (int q = 0; q < r; ++q) local += host_of_rank[q] == host_of_rank[r];
  return local;
}

/* The first host (by its first world rank) whose rank count tp does not divide; -1 when
 * every host's does. */
static int host_not_divided(const uint64_t *host_of_rank, int world, int tp, int *count) {
  for (int r = 0; r < world; ++r) {
    if (local_index(host_of_rank, r) != 0) continue;
    int n = 0;
    for (int q = r; q < world; ++q) n += host_of_rank[q] == host_of_rank[r];
    if (n % tp != 0) {
      *count = n;
      return r;
    }
  }
  return -1;
}

bool up_tp_place_rank(const uint64_t *host_of_rank, int world, int tp, bool allow_cross_host, int rank,
                      up_tp_place *place, int *bad_rank, int *bad_count) {
  int count = 0;
  const int bad = host_not_divided(host_of_rank, world, tp, &count);
  const bool in_host = bad < 0;
  if (!in_host && !allow_cross_host) {
    *bad_rank = bad;
    *bad_count = count;
    return false;
  }
  /* A group is led by its tp rank 0: in-host, the rank tp_rank places back among its
   * host's ranks; across hosts, the previous multiple of tp. */
  const int tp_rank = in_host ? local_index(host_of_rank, rank) % tp : rank % tp;
  int leader = rank - tp_rank;
  if (in_host) {
    leader = rank;
    for (int back = tp_rank; back > 0;)
      if (host_of_rank[--leader] == host_of_rank[rank]) --back;
  }
  int dp = 0;
  for (int q = 0; q < leader; ++q) dp += (in_host ? local_index(host_of_rank, q) : q) % tp == 0;
  bool spans = false;
  for (int first = 0; first < world && !in_host; first += tp)
    for (int k = 1; k < tp; ++k) spans = spans || host_of_rank[first + k] != host_of_rank[first];
  *place = (up_tp_place){.tp_rank = tp_rank, .dp_rank = dp, .spans_hosts = spans};
  return true;
}

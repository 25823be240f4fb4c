/* tp_grouping.h — where a rank goes in the DP x TP grid, from the host table alone (no
 * MPI, so the rule is testable with made-up hosts): each host's ranks, in world-rank
 * order, form groups of tp ranks (tp rank = local index % tp), so a group stays on one
 * host however the launcher interleaved the world ranks (../shared/PARALLEL.md 6.1).
 * Where some host's rank count is no multiple of tp, groups either are refused or, when
 * crossing hosts is allowed, are consecutive world ranks. Groups are numbered (the dp
 * index) in the order of their first world rank. topology.c gathers the table. */
#ifndef UP_TP_GROUPING_H
#define UP_TP_GROUPING_H

#include <stdbool.h>
#include <stdint.h>

typedef struct up_tp_place {
  int tp_rank;
  int dp_rank;
  bool spans_hosts; /* some group of the job holds ranks of two hosts */
} up_tp_place;

/* host_of_rank[r]: any key equal exactly for ranks on one host. tp must divide world.
 * true with rank's place; false when a host's ranks do not split into groups of tp and
 * crossing hosts is not allowed: *bad_rank is that host's first world rank and
 * *bad_count its number of ranks. */
bool up_tp_place_rank(const uint64_t *host_of_rank, int world, int tp, bool allow_cross_host, int rank,
                      up_tp_place *place, int *bad_rank, int *bad_count);

#endif

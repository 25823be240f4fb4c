/* tp_groups.h — the communicators of a DP x TP run (../shared/PARALLEL.md 7.2): an MPI
 * sub-communicator per tensor-parallel group (split by dp index, ordered by tp rank), a
 * communicator of the groups' leaders (tp rank 0 of each, ordered by dp index) for the
 * record gather, and the group's transport (tp_comm.h) that --comm and the backend
 * pick: self, mpi or nccl. Owns those communicators; the grouping itself is topology.h's. */
#ifndef UP_TP_GROUPS_H
#define UP_TP_GROUPS_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/parallel/tp_comm.h"
#include "kernels/ops.h"
#include "launcher/cli.h"
#include "launcher/topology.h"

typedef struct up_tp_groups {
  MPI_Comm tp_mpi;     /* this rank's tensor-parallel group */
  MPI_Comm dp_leaders; /* the groups' leaders; MPI_COMM_NULL on other ranks */
  up_tp_comm *comm;    /* the group's transport */
  up_transport_choice transport; /* resolved: never AUTO */
} up_tp_groups;

/* Whether this build has the NCCL transport. */
bool up_tp_nccl_available(void);

/* The transport --comm resolves to for groups of tp_size on backend be; false with the
 * reason (bad input: exit 2) when that choice cannot serve them. Same inputs, same
 * verdict on every rank. */
bool up_tp_transport_resolve(up_transport_choice choice, const up_backend *be, int tp_size,
                             up_transport_choice *resolved, char *err, size_t err_size);

const char *up_tp_transport_name(up_transport_choice transport);

/* The transport's library as the run file records it ("NCCL 2.28.9", MPI's version
 * line; "" for self). */
void up_tp_transport_version(up_transport_choice transport, char *buf, size_t size);

/* The NCCL_* environment variables of this process, "NAME=VALUE" comma-separated ("" when none). */
void up_tp_nccl_env(char *buf, size_t size);

/* Collective over MPI_COMM_WORLD, after up_topology_set_tp: split the groups and create
 * their transport (resolved by up_tp_transport_resolve; a failure of the transport's
 * library is fatal, naming rank, host and device). The mpi transport runs deterministic
 * sums, so results do not depend on MPI's algorithm choice; timeout_s is
 * --collective-timeout. */
void up_tp_groups_create(up_tp_groups *g, const up_topology *topo, up_transport_choice transport, up_backend *be,
                         double timeout_s);

/* Collective: the transport, then the communicators. */
void up_tp_groups_destroy(up_tp_groups *g);

#endif

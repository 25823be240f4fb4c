/* tp_groups.c — splitting the world into tensor-parallel groups and a leaders'
 * communicator, and picking each group's transport (see tp_groups.h). */
#include "launcher/parallel/tp_groups.h"

#include <stdio.h>
#include <string.h>

#include "launcher/mpi_check.h"
#include "launcher/parallel/tp_comm_mpi.h"
#ifdef UNIPREFILL_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif
#ifdef UNIPREFILL_HAVE_NCCL
#include "launcher/parallel/nccl/tp_comm_nccl.h"
#endif

bool up_tp_nccl_available(void) {
#ifdef UNIPREFILL_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

const char *up_tp_transport_name(up_transport_choice transport) {
  switch (transport) {
    case UP_TRANSPORT_AUTO: return "auto";
    case UP_TRANSPORT_SELF: return "self";
    case UP_TRANSPORT_MPI: return "mpi";
    case UP_TRANSPORT_NCCL: return "nccl";
  }
  return "unknown";
}

void up_tp_transport_version(up_transport_choice transport, char *buf, size_t size) {
  buf[0] = '\0';
  if (transport == UP_TRANSPORT_MPI) {
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    UP_CHECK_MPI(MPI_Get_library_version(mpi, &len));
    snprintf(buf, size, "%.*s", (int)strcspn(mpi, ",\n"), mpi);
  }
#ifdef UNIPREFILL_HAVE_NCCL
  if (transport == UP_TRANSPORT_NCCL) up_tp_nccl_version(buf, size);
#endif
}

void up_tp_nccl_env(char *buf, size_t size) {
  extern char **environ;
  size_t used = 0;
  buf[0] = '\0';
  for (char **e = environ; e && *e && used + 1 < size; ++e)
    if (strncmp(*e, "NCCL_", 5) == 0) used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "," : "", *e);
}

static bool on_cuda(const up_backend *be) { return strcmp(be->ops->name, "cuda") == 0; }

bool up_tp_transport_resolve(up_transport_choice choice, const up_backend *be, int tp_size,
                             up_transport_choice *resolved, char *err, size_t err_size) {
  if (choice == UP_TRANSPORT_AUTO) choice = tp_size == 1 ? UP_TRANSPORT_SELF : on_cuda(be) ? UP_TRANSPORT_NCCL
                                                                                          : UP_TRANSPORT_MPI;
  switch (choice) {
    case UP_TRANSPORT_SELF:
      if (tp_size > 1)
        return up_error(err, err_size, "--comm self is a group of one rank, but --tp %d asks for groups of %d (use "
                        "mpi or nccl)", tp_size, tp_size);
      break;
    case UP_TRANSPORT_MPI:
      if (on_cuda(be))
        return up_error(err, err_size, "--comm mpi moves host buffers, but the cuda backend keeps activations on the "
                        "GPU (use --comm nccl, or --backend cpu)");
      break;
    case UP_TRANSPORT_NCCL:
      if (!on_cuda(be))
        return up_error(err, err_size, "--comm nccl%s needs the cuda backend, and this run is on the %s backend "
                        "(use --comm mpi there)", tp_size > 1 ? " (the default for --tp > 1 on a GPU)" : "",
                        be->ops->name);
      if (!up_tp_nccl_available())
        return up_error(err, err_size, "--tp %d on the cuda backend needs NCCL, and this build has none (install "
                        "NCCL's headers and library, e.g. Debian's libnccl-dev, and configure again: CMake looks "
                        "for nccl.h and libnccl, also under NCCL_HOME)", tp_size);
      break;
    case UP_TRANSPORT_AUTO: break; /* resolved above */
  }
  *resolved = choice;
  return true;
}

void up_tp_groups_create(up_tp_groups *g, const up_topology *topo, up_transport_choice transport, up_backend *be,
                         double timeout_s) {
  memset(g, 0, sizeof *g);
  g->transport = transport;
  /* Split first, then build each group's transport on its own communicator: there is
   * no world-wide NCCL communicator, whose network transports data parallelism never
   * uses (PARALLEL.md 1.2). */
  UP_CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, topo->dp_rank, topo->tp_rank, &g->tp_mpi));
  UP_CHECK_MPI(MPI_Comm_set_errhandler(g->tp_mpi, MPI_ERRORS_RETURN));
  UP_CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, topo->tp_rank == 0 ? 0 : MPI_UNDEFINED, topo->dp_rank,
                              &g->dp_leaders));
  if (g->dp_leaders != MPI_COMM_NULL) UP_CHECK_MPI(MPI_Comm_set_errhandler(g->dp_leaders, MPI_ERRORS_RETURN));
  switch (transport) {
    case UP_TRANSPORT_MPI: g->comm = up_tp_comm_create_mpi(g->tp_mpi, true, timeout_s); break;
    case UP_TRANSPORT_NCCL:
#ifdef UNIPREFILL_HAVE_NCCL
      g->comm = up_tp_comm_create_nccl(g->tp_mpi, be, false, timeout_s);
#else
      UP_FATAL("the nccl transport was chosen in a build without NCCL (up_tp_transport_resolve refuses that)");
#endif
      break;
    case UP_TRANSPORT_SELF:
    case UP_TRANSPORT_AUTO:
#ifdef UNIPREFILL_HAVE_CUDA
      if (on_cuda(be)) {
        g->comm = up_tp_comm_create_self(up_cuda_backend_copy_device, be);
        break;
      }
#endif
      g->comm = up_tp_comm_create_self(NULL, NULL);
      break;
  }
  UP_ASSERT(g->comm->size == topo->tp_size && g->comm->rank == topo->tp_rank,
            "the %s transport sees rank %d of %d, the topology rank %d of %d", g->comm->ops->name, g->comm->rank,
            g->comm->size, topo->tp_rank, topo->tp_size);
}

void up_tp_groups_destroy(up_tp_groups *g) {
  if (g->comm) g->comm->ops->destroy(g->comm);
  g->comm = NULL;
  if (g->dp_leaders != MPI_COMM_NULL) UP_CHECK_MPI(MPI_Comm_free(&g->dp_leaders));
  if (g->tp_mpi != MPI_COMM_NULL) UP_CHECK_MPI(MPI_Comm_free(&g->tp_mpi));
}

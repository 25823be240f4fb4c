/* mpi_check.h — checks every MPI return code: a failure is reported with the call, the
 * location and MPI's own error string, then the job is aborted through fatal.h. */
#ifndef UP_MPI_CHECK_H
#define UP_MPI_CHECK_H

#include <mpi.h>

#include "core/fatal.h"

#define UP_CHECK_MPI(call)                                                          \
  do {                                                                              \
    const int up_mpi_rc_ = (call);                                                  \
    if (up_mpi_rc_ != MPI_SUCCESS) {                                                \
      char up_mpi_msg_[MPI_MAX_ERROR_STRING];                                       \
      int up_mpi_len_ = 0;                                                          \
      MPI_Error_string(up_mpi_rc_, up_mpi_msg_, &up_mpi_len_);                      \
      up_fatal_at(__FILE__, __LINE__, "MPI call %s failed: %s", #call, up_mpi_msg_); \
    }                                                                               \
  } while (0)

#endif

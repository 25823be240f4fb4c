/* host_memory.h — how much host memory this process may still take, which is the CPU
 * backend's free memory: the least of the kernel's MemAvailable, the room left under the
 * address-space limit (RLIMIT_AS, ulimit -v) and the room left under the memory limit of
 * every cgroup from the process's own up to the root (v2 memory.max, v1
 * memory.limit_in_bytes). A container or batch job often has far less than the node's
 * MemAvailable, and planning for the node's would end in the OOM killer. Reads files
 * only; allocates nothing the caller keeps. */
#ifndef UP_HOST_MEMORY_H
#define UP_HOST_MEMORY_H

#include <stdint.h>

/* What the limits leave, each INT64_MAX where there is none. */
typedef struct up_host_memory {
  int64_t mem_available;   /* /proc/meminfo MemAvailable */
  int64_t address_space;   /* RLIMIT_AS soft limit minus this process's VmSize */
  int64_t cgroup;          /* the least of limit - working set over the cgroup and its ancestors */
} up_host_memory;

/* Read the limits from the file system below root ("" for the real one: tests pass a
 * directory holding proc/ and sys/fs/cgroup/ files). rlimit_as is the RLIMIT_AS soft
 * limit in bytes (INT64_MAX: none). */
void up_host_memory_read(const char *root, int64_t rlimit_as, up_host_memory *out);

/* The least of the three, never negative. */
int64_t up_host_memory_headroom(const up_host_memory *m);

/* up_host_memory_headroom of this process, now. */
int64_t up_host_memory_available(void);

#endif

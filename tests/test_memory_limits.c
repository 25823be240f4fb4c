/* test_memory_limits.c — memory sizes that come from the user or the host: a
 * --kv-cache-mib pool must hold at least one --kv-block block (and at most the pool's
 * INT32_MAX blocks), counted without overflow; and the CPU backend's free memory is the
 * least of MemAvailable, the room under RLIMIT_AS and the room under every cgroup
 * limit (v1 and v2) up the process's cgroup chain, read here from fake /proc and /sys
 * trees and once from the real process under a lowered RLIMIT_AS. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model/model_config.h"
#include "kernels/cpu/host_memory.h"
#include "launcher/sweep/point_memory.h"

#define GIB (1024LL * 1024 * 1024)

/* ---- --kv-cache-mib ----------------------------------------------------------------- */

static const up_model_config *tiny(void) {
  const up_model_config *cfg = up_model_preset_find("tiny-llama");
  cr_assert_not_null(cfg);
  return cfg;
}

Test(kv_cache_mib, a_pool_smaller_than_one_block_names_both_flags) {
  char err[512] = "";
  const int64_t block_bytes = up_point_kv_block_bytes(tiny(), UP_DTYPE_F32, 2048);
  cr_assert_gt(block_bytes, 1048576, "the case needs a block above 1 MiB");
  cr_expect_eq(up_point_kv_blocks_in_mib(tiny(), UP_DTYPE_F32, 1, 2048), 0);
  cr_expect_not(up_point_kv_cache_check(tiny(), UP_DTYPE_F32, 1, 2048, err, sizeof err));
  cr_expect(strstr(err, "--kv-cache-mib 1") != NULL && strstr(err, "--kv-block 2048") != NULL, "%s", err);
  cr_expect(up_point_kv_cache_check(tiny(), UP_DTYPE_F32, 1, 16, err, sizeof err), "%s", err);
}

Test(kv_cache_mib, blocks_are_counted_exactly_and_without_overflow) {
  for (int32_t block = 1; block <= 4096; block *= 4)
    for (int64_t mib = 1; mib <= 4096; mib = mib * 3 + 1) {
      const int64_t bytes = up_point_kv_block_bytes(tiny(), UP_DTYPE_F32, block);
      cr_expect_eq(up_point_kv_blocks_in_mib(tiny(), UP_DTYPE_F32, mib, block), mib * 1048576 / bytes,
                   "%lld MiB of %d-entry blocks", (long long)mib, (int)block);
    }
  char err[512] = "";
  cr_expect_geq(up_point_kv_blocks_in_mib(tiny(), UP_DTYPE_F32, INT64_MAX, 1), (int64_t)INT32_MAX);
  cr_expect_not(up_point_kv_cache_check(tiny(), UP_DTYPE_F32, INT64_MAX, 1, err, sizeof err));
  cr_expect(strstr(err, "more than the KV pool's limit") != NULL, "%s", err);
}

/* ---- host memory ------------------------------------------------------------------- */

static char fake_root[64];

static void put_file(const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", fake_root, rel);
  /* mkdir -p of the directories on the way */
  for (char *p = path + strlen(fake_root) + 1; *p; ++p)
    if (*p == '/') {
      *p = '\0';
      mkdir(path, 0755);
      *p = '/';
    }
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

static void make_fake_root(const char *cgroup_line) {
  snprintf(fake_root, sizeof fake_root, "/tmp/up_host_memory_XXXXXX");
  cr_assert_not_null(mkdtemp(fake_root));
  put_file("proc/meminfo", "MemTotal:       16777216 kB\nMemFree:  1 kB\nMemAvailable:    8388608 kB\n");
  put_file("proc/self/status", "Name:\tbench\nVmPeak:\t 2000000 kB\nVmSize:\t 1048576 kB\n");
  put_file("proc/self/cgroup", cgroup_line);
}

static void remove_fake_root(void) {
  char command[128];
  snprintf(command, sizeof command, "rm -rf %s", fake_root);
  cr_assert_eq(system(command), 0);
}

static up_host_memory read_fake(int64_t rlimit_as) {
  up_host_memory m;
  up_host_memory_read(fake_root, rlimit_as, &m);
  return m;
}

Test(host_memory, without_limits_it_is_mem_available) {
  make_fake_root("0::/\n");
  const up_host_memory m = read_fake(INT64_MAX);
  cr_expect_eq(m.mem_available, 8 * GIB);
  cr_expect_eq(m.address_space, INT64_MAX);
  cr_expect_eq(m.cgroup, INT64_MAX);
  cr_expect_eq(up_host_memory_headroom(&m), 8 * GIB);
  remove_fake_root();
}

Test(host_memory, rlimit_as_leaves_the_limit_less_the_address_space) {
  make_fake_root("0::/\n");
  up_host_memory m = read_fake(3 * GIB);
  cr_expect_eq(m.address_space, 2 * GIB); /* VmSize is 1 GiB */
  cr_expect_eq(up_host_memory_headroom(&m), 2 * GIB);
  m = read_fake(GIB / 2);
  cr_expect_eq(up_host_memory_headroom(&m), 0, "a limit below the address space leaves nothing");
  remove_fake_root();
}

/* The parent's limit binds: limit 4 GiB, usage 3 GiB of which 1 GiB inactive file cache
 * leaves 2 GiB, although the job's own cgroup says "max". */
Test(host_memory, cgroup_v2_limits_up_the_chain) {
  make_fake_root("0::/job/step\n");
  put_file("sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
  put_file("sys/fs/cgroup/job/memory.max", "4294967296\n");
  put_file("sys/fs/cgroup/job/memory.current", "3221225472\n");
  put_file("sys/fs/cgroup/job/memory.stat", "anon 2147483648\nfile 1073741824\ninactive_file 1073741824\n");
  put_file("sys/fs/cgroup/job/step/memory.max", "max\n");
  put_file("sys/fs/cgroup/job/step/memory.current", "3221225472\n");
  const up_host_memory m = read_fake(INT64_MAX);
  cr_expect_eq(m.cgroup, 2 * GIB);
  cr_expect_eq(up_host_memory_headroom(&m), 2 * GIB);
  remove_fake_root();
}

Test(host_memory, cgroup_v1_memory_controller) {
  make_fake_root("12:cpu,cpuacct:/x\n4:memory,hugetlb:/batch/42\n0::/\n");
  put_file("sys/fs/cgroup/memory/batch/42/memory.limit_in_bytes", "1610612736\n");
  put_file("sys/fs/cgroup/memory/batch/42/memory.usage_in_bytes", "536870912\n");
  put_file("sys/fs/cgroup/memory/batch/42/memory.stat", "cache 0\ninactive_file 9\ntotal_inactive_file 0\n");
  put_file("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  put_file("sys/fs/cgroup/memory/memory.usage_in_bytes", "8589934592\n");
  const up_host_memory m = read_fake(INT64_MAX);
  cr_expect_eq(m.cgroup, GIB);
  cr_expect_eq(up_host_memory_headroom(&m), GIB);
  remove_fake_root();
}

/* In a cgroup namespace /proc/self/cgroup names a path that is not below the mount,
 * whose root is then the process's own cgroup. */
Test(host_memory, cgroup_namespace_root_is_the_own_cgroup) {
  make_fake_root("0::/kubepods/pod1/c1\n");
  put_file("sys/fs/cgroup/memory.max", "2147483648\n");
  put_file("sys/fs/cgroup/memory.current", "1073741824\n");
  const up_host_memory m = read_fake(INT64_MAX);
  cr_expect_eq(m.cgroup, GIB);
  remove_fake_root();
}

/* This process under a lowered RLIMIT_AS (Criterion runs each test in its own process). */
Test(host_memory, the_real_rlimit_as_is_honoured) {
  const int64_t before = up_host_memory_available();
  cr_assert_gt(before, 256LL << 20, "the machine should have more than 256 MiB free");
  /* VmSize now plus 128 MiB: well below what the machine has free. */
  FILE *f = fopen("/proc/self/status", "r");
  cr_assert_not_null(f);
  char line[256];
  long long vm_kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %lld kB", &vm_kib) == 1) break;
  fclose(f);
  cr_assert_gt(vm_kib, 0);
  struct rlimit limit;
  cr_assert_eq(getrlimit(RLIMIT_AS, &limit), 0);
  limit.rlim_cur = (rlim_t)(vm_kib * 1024 + (128LL << 20));
  cr_assert(limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= limit.rlim_cur, "the hard limit is lower already");
  cr_assert_eq(setrlimit(RLIMIT_AS, &limit), 0);
  const int64_t after = up_host_memory_available();
  cr_expect_leq(after, 128LL << 20, "RLIMIT_AS ignored: %lld bytes reported", (long long)after);
  cr_expect_gt(after, 64LL << 20, "%lld bytes reported", (long long)after);
}

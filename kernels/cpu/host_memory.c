/* host_memory.c — the host memory limits of this process (see host_memory.h). A cgroup's
 * room is its limit minus its working set (usage less the inactive file cache, which the
 * kernel reclaims before it kills), as container runtimes count it; a parent's limit
 * binds its children too, so every level up to the mount's root is read. */
#include "kernels/cpu/host_memory.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define HOST_PATH_MAX 4096

/* The value of a "Key: N kB" line of a /proc file, in bytes; -1 when absent. */
static int64_t read_kib_line(const char *path, const char *key) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[512];
  int64_t bytes = -1;
  const size_t key_len = strlen(key);
  while (bytes < 0 && fgets(line, sizeof line, f)) {
    long long kib = 0;
    if (strncmp(line, key, key_len) == 0 && line[key_len] == ':' && sscanf(line + key_len + 1, "%lld", &kib) == 1 &&
        kib >= 0 && kib <= INT64_MAX / 1024)
      bytes = (int64_t)kib * 1024;
  }
  fclose(f);
  return bytes;
}

/* A cgroup file holding one number, or "max" (INT64_MAX); -1 when absent or unreadable. */
static int64_t read_number_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char text[64] = "";
  const bool got = fgets(text, sizeof text, f) != NULL;
  fclose(f);
  if (!got) return -1;
  if (strncmp(text, "max", 3) == 0) return INT64_MAX;
  char *end = NULL;
  const long long v = strtoll(text, &end, 10);
  return end != text && v >= 0 ? (int64_t)v : -1;
}

/* The value of a "key N" line of a memory.stat file; 0 when absent. */
static int64_t read_stat_value(const char *path, const char *key) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[256];
  int64_t value = 0;
  const size_t key_len = strlen(key);
  while (fgets(line, sizeof line, f)) {
    long long v = 0;
    if (strncmp(line, key, key_len) == 0 && line[key_len] == ' ' && sscanf(line + key_len + 1, "%lld", &v) == 1) {
      value = v > 0 ? (int64_t)v : 0;
      break;
    }
  }
  fclose(f);
  return value;
}

/* The file names of one cgroup version's memory controller. */
typedef struct cgroup_files {
  const char *mount;    /* below root */
  const char *limit, *usage, *stat_key;
} cgroup_files;

static const cgroup_files k_cgroup_v2 = {"/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"};
static const cgroup_files k_cgroup_v1 = {"/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
                                         "total_inactive_file"};

/* Room under the limit of the cgroup directory dir; INT64_MAX without a limit file. */
static int64_t cgroup_room(const char *dir, const cgroup_files *files) {
  char path[HOST_PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, files->limit) >= (int)sizeof path) return INT64_MAX;
  const int64_t limit = read_number_file(path);
  if (limit < 0 || limit == INT64_MAX) return INT64_MAX;
  int64_t usage = -1, inactive = 0;
  if (snprintf(path, sizeof path, "%s/%s", dir, files->usage) < (int)sizeof path) usage = read_number_file(path);
  if (snprintf(path, sizeof path, "%s/memory.stat", dir) < (int)sizeof path)
    inactive = read_stat_value(path, files->stat_key);
  const int64_t working_set = usage > inactive ? usage - inactive : 0;
  return limit > working_set ? limit - working_set : 0;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The least room over the cgroup at path (as /proc/self/cgroup names it) and its
 * ancestors. In a cgroup namespace the path may not exist below the mount, which then
 * is the process's own cgroup. */
static int64_t cgroup_chain_room(const char *root, const cgroup_files *files, const char *cgroup_path) {
  char rel[HOST_PATH_MAX];
  snprintf(rel, sizeof rel, "%s", cgroup_path);
  int64_t room = INT64_MAX;
  for (;;) {
    char dir[HOST_PATH_MAX];
    struct stat st;
    if (snprintf(dir, sizeof dir, "%s%s%s", root, files->mount, strcmp(rel, "/") == 0 ? "" : rel) < (int)sizeof dir &&
        stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
      room = min64(room, cgroup_room(dir, files));
    char *slash = strrchr(rel, '/');
    if (!slash || (slash == rel && rel[1] == '\0')) break;
    if (slash == rel) slash[1] = '\0'; /* "/a" -> "/" */
    else *slash = '\0';
  }
  return room;
}

/* Lines "ID:CONTROLLERS:PATH" of /proc/self/cgroup: "0::PATH" is the v2 hierarchy, a
 * line whose controllers include "memory" the v1 memory hierarchy. */
static int64_t read_cgroup_room(const char *root) {
  char path[HOST_PATH_MAX];
  snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
  FILE *f = fopen(path, "r");
  if (!f) return INT64_MAX;
  char line[HOST_PATH_MAX];
  int64_t room = INT64_MAX;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *first = strchr(line, ':');
    char *second = first ? strchr(first + 1, ':') : NULL;
    if (!second || second[1] != '/') continue;
    *first = '\0';
    *second = '\0';
    const char *controllers = first + 1, *cgroup_path = second + 1;
    bool memory = false;
    for (const char *c = controllers; *c;) {
      const size_t len = strcspn(c, ",");
      memory |= len == 6 && strncmp(c, "memory", 6) == 0;
      c += len + (c[len] == ',');
    }
    const bool unified = strcmp(line, "0") == 0 && controllers[0] == '\0';
    if (unified || memory)
      room = min64(room, cgroup_chain_room(root, unified ? &k_cgroup_v2 : &k_cgroup_v1, cgroup_path));
  }
  fclose(f);
  return room;
}

void up_host_memory_read(const char *root, int64_t rlimit_as, up_host_memory *out) {
  char path[HOST_PATH_MAX];
  snprintf(path, sizeof path, "%s/proc/meminfo", root);
  const int64_t available = read_kib_line(path, "MemAvailable");
  out->mem_available = available >= 0 ? available : 0; /* unknown: nothing is promised */
  out->address_space = INT64_MAX;
  if (rlimit_as != INT64_MAX) {
    snprintf(path, sizeof path, "%s/proc/self/status", root);
    const int64_t used = read_kib_line(path, "VmSize");
    out->address_space = used >= 0 && rlimit_as > used ? rlimit_as - used : 0;
  }
  out->cgroup = read_cgroup_room(root);
}

int64_t up_host_memory_headroom(const up_host_memory *m) {
  const int64_t least = min64(m->mem_available, min64(m->address_space, m->cgroup));
  return least > 0 ? least : 0;
}

int64_t up_host_memory_available(void) {
  struct rlimit limit;
  int64_t rlimit_as = INT64_MAX;
  if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (rlim_t)INT64_MAX)
    rlimit_as = (int64_t)limit.rlim_cur;
  up_host_memory m;
  up_host_memory_read("", rlimit_as, &m);
  return up_host_memory_headroom(&m);
}

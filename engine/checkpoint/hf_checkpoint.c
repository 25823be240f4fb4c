/* hf_checkpoint.c — opening a Hugging Face checkpoint directory (see hf_checkpoint.h):
 * the config, then the shards the index names (or the single file), each mapped and
 * validated by engine/safetensors, then the index checked against the shards and one
 * name index built over all of them. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "engine/checkpoint/hf_checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/checkpoint/hf_config.h"
#include "engine/checkpoint/json_input.h"
#include "core/fatal.h"

#define INDEX_FILE "model.safetensors.index.json"
#define SINGLE_FILE "model.safetensors"
#define SAFETENSORS_SUFFIX ".safetensors"

struct up_hf_checkpoint {
  char *dir;
  up_model_config cfg;
  int32_t n_shards;
  up_safetensors **shards;
  int64_t n_tensors;
  const up_st_tensor **by_name;
};

static bool join_path(char *out, size_t out_size, const char *dir, const char *file, char *err, size_t err_size) {
  const int n = snprintf(out, out_size, "%s/%s", dir, file);
  if (n < 0 || (size_t)n >= out_size) return up_error(err, err_size, "%s: path to '%s' is too long", dir, file);
  return true;
}

static bool path_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

/* The name a checkpoint's config takes: its directory's last component, resolved
 * through realpath so that "." or "dir/" still give the real name. */
static void checkpoint_name(const char *dir, char *name, size_t name_size) {
  char resolved[PATH_MAX];
  const char *path = realpath(dir, resolved) ? resolved : dir;
  size_t end = strlen(path);
  while (end > 1 && path[end - 1] == '/') --end;
  size_t begin = end;
  while (begin > 0 && path[begin - 1] != '/') --begin;
  snprintf(name, name_size, "%.*s", (int)(end - begin), path + begin);
}

/* Map one shard file of the directory into ck->shards. */
static bool add_shard(up_hf_checkpoint *ck, const char *file, char *err, size_t err_size) {
  char path[PATH_MAX];
  if (!join_path(path, sizeof path, ck->dir, file, err, err_size)) return false;
  up_safetensors *st = up_safetensors_open(path, err, err_size);
  if (!st) return false;
  ck->shards[ck->n_shards++] = st;
  return true;
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard name from the index must stay inside the directory. */
static bool is_plain_file_name(const char *s) {
  return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* The shard (index into the sorted shard names) a weight_map value names. */
static int32_t shard_index(const char *const *names, int32_t n, const char *file) {
  const char *const *hit = bsearch(&file, names, (size_t)n, sizeof *names, compare_strings);
  return hit ? (int32_t)(hit - names) : -1;
}

/* The index's top level: an object with a non-empty "weight_map" object, no key twice. */
static bool check_index_shape(const cJSON *root, const char *index_path, const cJSON **map, char *err,
                              size_t err_size) {
  if (!cJSON_IsObject(root)) return up_error(err, err_size, "%s: not a JSON object", index_path);
  const char *dup = up_json_duplicate_key(root);
  if (dup) return up_error(err, err_size, "%s: key '%s' appears twice", index_path, dup);
  *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(*map) || !(*map)->child)
    return up_error(err, err_size, "%s: 'weight_map' must be a non-empty object (tensor name -> shard file)", index_path);
  dup = up_json_duplicate_key(*map);
  if (dup) return up_error(err, err_size, "%s: tensor '%s' appears twice in 'weight_map'", index_path, dup);
  return true;
}

/* The distinct shard files weight_map names, sorted; *names points into the JSON tree
 * and is the caller's to free. */
static bool collect_shard_files(const cJSON *map, const char *index_path, const char ***names, int32_t *n_unique,
                                char *err, size_t err_size) {
  *names = up_malloc_or_die(sizeof **names * (size_t)cJSON_GetArraySize(map), "checkpoint shard names");
  int32_t n = 0;
  const cJSON *entry = NULL;
  cJSON_ArrayForEach(entry, map) {
    if (!cJSON_IsString(entry) || !is_plain_file_name(entry->valuestring))
      return up_error(err, err_size, "%s: tensor '%s' is mapped to something other than a file name in the directory",
                  index_path, entry->string);
    (*names)[n++] = entry->valuestring;
  }
  qsort(*names, (size_t)n, sizeof **names, compare_strings);
  *n_unique = 0;
  for (int32_t i = 0; i < n; ++i)
    if (*n_unique == 0 || strcmp((*names)[*n_unique - 1], (*names)[i]) != 0) (*names)[(*n_unique)++] = (*names)[i];
  return true;
}

static bool open_shards(up_hf_checkpoint *ck, const char *index_path, const char *const *names, int32_t n,
                        char *err, size_t err_size) {
  ck->shards = up_calloc_or_die((size_t)n, sizeof *ck->shards, "checkpoint shards");
  for (int32_t i = 0; i < n; ++i) {
    char inner[1024];
    if (!add_shard(ck, names[i], inner, sizeof inner))
      return up_error(err, err_size, "%s: shard '%s': %s", index_path, names[i], inner);
  }
  return true;
}

/* Every mapped tensor is in the shard it is mapped to, and the shards hold nothing
 * else. */
static bool index_matches_shards(const up_hf_checkpoint *ck, const char *index_path, const cJSON *map,
                                 const char *const *names, char *err, size_t err_size) {
  int64_t n_mapped = 0;
  const cJSON *entry = NULL;
  cJSON_ArrayForEach(entry, map) {
    const int32_t s = shard_index(names, ck->n_shards, entry->valuestring);
    UP_ASSERT(s >= 0, "shard '%s' was collected from this map", entry->valuestring);
    if (!up_safetensors_find(ck->shards[s], entry->string))
      return up_error(err, err_size, "%s: tensor '%s' is mapped to shard '%s' but is not in it", index_path,
                  entry->string, entry->valuestring);
    ++n_mapped;
  }
  /* So the shards hold at least the mapped tensors; any more, and one of them is a
   * tensor the index does not map to its shard: find it to name it. */
  int64_t in_shards = 0;
  for (int32_t s = 0; s < ck->n_shards; ++s) in_shards += up_safetensors_tensor_count(ck->shards[s]);
  if (in_shards == n_mapped) return true;
  for (int32_t s = 0; s < ck->n_shards; ++s)
    for (int64_t t = 0; t < up_safetensors_tensor_count(ck->shards[s]); ++t) {
      const char *tensor = up_safetensors_tensor_at(ck->shards[s], t)->name;
      const cJSON *mapped = cJSON_GetObjectItemCaseSensitive(map, tensor);
      if (!mapped)
        return up_error(err, err_size, "%s: shard '%s' holds tensor '%s', which 'weight_map' does not list", index_path,
                    names[s], tensor);
      if (strcmp(mapped->valuestring, names[s]) != 0)
        return up_error(err, err_size, "%s: tensor '%s' is in shard '%s' too, but 'weight_map' maps it to '%s'",
                    index_path, tensor, names[s], mapped->valuestring);
    }
  UP_FATAL("%lld tensors in shards, %lld mapped, yet each is mapped to its shard", (long long)in_shards,
           (long long)n_mapped);
}

static bool open_indexed(up_hf_checkpoint *ck, const char *index_path, char *err, size_t err_size) {
  cJSON *root = up_json_parse_file(index_path, UP_HF_INDEX_MAX_BYTES, err, err_size);
  if (!root) return false;
  const cJSON *map = NULL;
  const char **names = NULL;
  int32_t n_shards = 0;
  const bool ok = check_index_shape(root, index_path, &map, err, err_size) &&
                  collect_shard_files(map, index_path, &names, &n_shards, err, err_size) &&
                  open_shards(ck, index_path, names, n_shards, err, err_size) &&
                  index_matches_shards(ck, index_path, map, names, err, err_size);
  free(names);
  cJSON_Delete(root);
  return ok;
}

static bool has_suffix(const char *s, const char *suffix) {
  const size_t n = strlen(s), k = strlen(suffix);
  return n > k && strcmp(s + n - k, suffix) == 0;
}

/* No index: model.safetensors, else the only *.safetensors file there is. */
static bool open_single(up_hf_checkpoint *ck, char *err, size_t err_size) {
  ck->shards = up_calloc_or_die(1, sizeof *ck->shards, "checkpoint shards");
  char single[PATH_MAX];
  if (!join_path(single, sizeof single, ck->dir, SINGLE_FILE, err, err_size)) return false;
  if (path_exists(single)) return add_shard(ck, SINGLE_FILE, err, err_size);

  DIR *d = opendir(ck->dir);
  if (!d) return up_error(err, err_size, "%s: cannot list: %s", ck->dir, strerror(errno));
  char found[3][256];
  int32_t n_found = 0;
  const struct dirent *e;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (!has_suffix(e->d_name, SAFETENSORS_SUFFIX)) continue;
    if (n_found < 3) snprintf(found[n_found], sizeof found[n_found], "%s", e->d_name);
    ++n_found;
  }
  const int read_errno = errno;
  if (closedir(d) != 0) return up_error(err, err_size, "%s: closedir failed: %s", ck->dir, strerror(errno));
  if (read_errno != 0) return up_error(err, err_size, "%s: cannot list: %s", ck->dir, strerror(read_errno));
  if (n_found == 0)
    return up_error(err, err_size, "%s: no " INDEX_FILE ", " SINGLE_FILE " or other .safetensors file", ck->dir);
  if (n_found > 1)
    return up_error(err, err_size, "%s: %d .safetensors files (%s, %s%s) and no " INDEX_FILE " to say which to load",
                ck->dir, (int)n_found, found[0], found[1], n_found > 2 ? ", ..." : "");
  return add_shard(ck, found[0], err, err_size);
}

static void build_name_index(up_hf_checkpoint *ck) {
  ck->n_tensors = 0;
  for (int32_t s = 0; s < ck->n_shards; ++s) ck->n_tensors += up_safetensors_tensor_count(ck->shards[s]);
  ck->by_name = up_malloc_or_die(sizeof *ck->by_name * ((size_t)ck->n_tensors + 1), "checkpoint name index");
  int64_t n = 0;
  for (int32_t s = 0; s < ck->n_shards; ++s)
    for (int64_t t = 0; t < up_safetensors_tensor_count(ck->shards[s]); ++t)
      ck->by_name[n++] = up_safetensors_tensor_at(ck->shards[s], t);
  up_st_sort_by_name(ck->by_name, ck->n_tensors);
  /* One shard (names unique within a file) or an index matched exactly against its shards. */
  for (int64_t i = 1; i < ck->n_tensors; ++i)
    UP_ASSERT(strcmp(ck->by_name[i - 1]->name, ck->by_name[i]->name) != 0, "tensor '%s' in two shards",
              ck->by_name[i]->name);
}

up_hf_checkpoint *up_hf_checkpoint_open(const char *dir, char *err, size_t err_size) {
  struct stat sb;
  if (stat(dir, &sb) != 0) {
    up_error(err, err_size, "%s: cannot open checkpoint directory: %s", dir, strerror(errno));
    return NULL;
  }
  if (!S_ISDIR(sb.st_mode)) {
    up_error(err, err_size, "%s: not a directory (a checkpoint is a directory with config.json)", dir);
    return NULL;
  }
  up_hf_checkpoint *ck = up_calloc_or_die(1, sizeof *ck, "checkpoint");
  ck->dir = strdup(dir);
  if (!ck->dir) UP_FATAL("out of host memory for a checkpoint path");

  char name[sizeof ck->cfg.name], config_path[PATH_MAX], index_path[PATH_MAX];
  checkpoint_name(dir, name, sizeof name);
  bool ok = join_path(config_path, sizeof config_path, dir, "config.json", err, err_size) &&
            join_path(index_path, sizeof index_path, dir, INDEX_FILE, err, err_size) &&
            up_hf_config_load(config_path, name, &ck->cfg, err, err_size);
  if (ok) ok = path_exists(index_path) ? open_indexed(ck, index_path, err, err_size) : open_single(ck, err, err_size);
  if (!ok) {
    up_hf_checkpoint_close(ck);
    return NULL;
  }
  build_name_index(ck);
  return ck;
}

void up_hf_checkpoint_close(up_hf_checkpoint *ck) {
  if (!ck) return;
  for (int32_t s = 0; s < ck->n_shards; ++s) up_safetensors_close(ck->shards[s]);
  free(ck->shards);
  free(ck->by_name);
  free(ck->dir);
  free(ck);
}

const char *up_hf_checkpoint_dir(const up_hf_checkpoint *ck) { return ck->dir; }

const up_model_config *up_hf_checkpoint_config(const up_hf_checkpoint *ck) { return &ck->cfg; }

int32_t up_hf_checkpoint_shard_count(const up_hf_checkpoint *ck) { return ck->n_shards; }

const up_safetensors *up_hf_checkpoint_shard_at(const up_hf_checkpoint *ck, int32_t index) {
  return (index >= 0 && index < ck->n_shards) ? ck->shards[index] : NULL;
}

int64_t up_hf_checkpoint_tensor_count(const up_hf_checkpoint *ck) { return ck->n_tensors; }

const up_st_tensor *up_hf_checkpoint_tensor_at(const up_hf_checkpoint *ck, int64_t index) {
  return (index >= 0 && index < ck->n_tensors) ? ck->by_name[index] : NULL;
}

const up_st_tensor *up_hf_checkpoint_find(const up_hf_checkpoint *ck, const char *name) {
  return up_st_find_sorted(ck->by_name, ck->n_tensors, name);
}

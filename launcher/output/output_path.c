/* output_path.c — refuses a results path that would overwrite an input or cannot be
 * created (see output_path.h). Two paths name the same file when stat() gives the same
 * device and inode: that covers "./x", symbolic links and hard links alike, which
 * comparing path strings would not. */
#include "launcher/output/output_path.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file_kind.h"

#define UP_MAX_RUN_INPUTS 56 /* --model, --trace, the --eval-corpus, --eval-file and --prompt-source files (16 at most each) */

static bool same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The directory part of path ("." when it has none). */
static void parent_dir(const char *path, char *dir, size_t size) {
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, size, ".");
  else if (slash == path) snprintf(dir, size, "/");
  else snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

/* The results file is created in its directory (as a temporary file renamed into place),
 * so the directory must exist and be writable. */
static bool check_directory(const char *output_path, char *err, size_t err_size) {
  char dir[UP_PATH_MAX];
  parent_dir(output_path, dir, sizeof dir);
  struct stat st;
  if (stat(dir, &st) != 0) {
    snprintf(err, err_size, "-o %s: directory %s: %s", output_path, dir, strerror(errno));
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(err, err_size, "-o %s: %s is not a directory", output_path, dir);
    return false;
  }
  if (access(dir, W_OK | X_OK) != 0) {
    snprintf(err, err_size, "-o %s: cannot create files in directory %s: %s", output_path, dir, strerror(errno));
    return false;
  }
  return true;
}

/* Whether out is one of the entries of directory dir; names it in err. */
static bool is_in_directory(const struct stat *out, const char *output_path, const up_run_input *in, char *err,
                            size_t err_size) {
  DIR *d = opendir(in->path);
  if (!d) return false; /* unreadable: the checkpoint reader reports it */
  bool found = false;
  for (const struct dirent *e = readdir(d); e && !found; e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char entry[2 * UP_PATH_MAX];
    snprintf(entry, sizeof entry, "%s/%s", in->path, e->d_name);
    struct stat st;
    if (stat(entry, &st) == 0 && same_file(&st, out)) {
      snprintf(err, err_size, "-o %s is %s, a file of the %s directory: writing the results there would destroy it",
               output_path, entry, in->flag);
      found = true;
    }
  }
  closedir(d);
  return found;
}

bool up_output_path_check(const char *output_path, const up_run_input *inputs, int32_t n_inputs, char *err,
                          size_t err_size) {
  struct stat out;
  if (stat(output_path, &out) != 0) {
    if (errno != ENOENT) {
      snprintf(err, err_size, "-o %s: %s", output_path, strerror(errno));
      return false;
    }
    /* A new file cannot be an input yet. */
    return check_directory(output_path, err, err_size);
  }
  for (int32_t i = 0; i < n_inputs; ++i) {
    struct stat in;
    if (stat(inputs[i].path, &in) != 0) continue;
    if (same_file(&in, &out)) {
      snprintf(err, err_size, "-o %s is the %s %s %s: writing the results there would destroy it", output_path,
               inputs[i].flag, S_ISDIR(in.st_mode) ? "directory" : "file", inputs[i].path);
      return false;
    }
    if (S_ISDIR(in.st_mode) && is_in_directory(&out, output_path, &inputs[i], err, err_size)) return false;
  }
  if (S_ISDIR(out.st_mode)) {
    snprintf(err, err_size, "-o %s is a directory (give a file name inside it, such as %s/run.h5)", output_path,
             output_path);
    return false;
  }
  /* The run file replaces what is there by renaming over it: never a device or a pipe. */
  if (!S_ISREG(out.st_mode)) {
    snprintf(err, err_size, "-o %s is %s, not a regular file", output_path, up_file_kind(out.st_mode));
    return false;
  }
  return check_directory(output_path, err, err_size);
}

bool up_output_path_check_options(const up_options *opt, char *err, size_t err_size) {
  if (!opt->output_path[0]) return true;
  up_run_input inputs[UP_MAX_RUN_INPUTS];
  int32_t n = 0;
  if (opt->model_given) inputs[n++] = (up_run_input){"--model", opt->model};
  if (opt->trace_path[0]) inputs[n++] = (up_run_input){"--trace", opt->trace_path};
  char corpus[UP_PATH_MAX];
  snprintf(corpus, sizeof corpus, "%s", opt->eval_corpus);
  for (char *save = NULL, *p = strtok_r(corpus, ",", &save); p && n < UP_MAX_RUN_INPUTS;
       p = strtok_r(NULL, ",", &save))
    inputs[n++] = (up_run_input){"--eval-corpus", p};
  char eval_files[UP_PATH_MAX];
  snprintf(eval_files, sizeof eval_files, "%s", opt->eval_files);
  for (char *save = NULL, *p = strtok_r(eval_files, ",", &save); p && n < UP_MAX_RUN_INPUTS;
       p = strtok_r(NULL, ",", &save))
    inputs[n++] = (up_run_input){"--eval-file", p};
  char prompts[UP_PROMPT_CHOICE_MAX];
  snprintf(prompts, sizeof prompts, "%s", opt->prompt_source.paths);
  for (char *save = NULL, *p = strtok_r(prompts, ",", &save); p && n < UP_MAX_RUN_INPUTS;
       p = strtok_r(NULL, ",", &save))
    inputs[n++] = (up_run_input){"--prompt-source", p};
  return up_output_path_check(opt->output_path, inputs, n, err, err_size);
}

/* output_path.h — the check of the results path (-o) made once before any mode starts:
 * the run file must not replace one of the run's own inputs (the --model file or any
 * file of the --model directory, the --trace file, the --eval-corpus files), compared
 * by device and inode so that symbolic and hard links count, and it must name a file
 * (not a directory or a device) in an existing, writable directory. Only reads the file
 * system; creating the file is results_h5.c's. */
#ifndef UP_OUTPUT_PATH_H
#define UP_OUTPUT_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "launcher/cli.h"

/* One input of the run: the flag it came from and its path (a file, or a directory
 * whose every entry counts as an input). */
typedef struct up_run_input {
  const char *flag;
  const char *path;
} up_run_input;

/* False with a message naming output_path and the input it would overwrite, or what is
 * wrong with its directory. Inputs that do not exist are skipped (their own checks
 * report them). */
bool up_output_path_check(const char *output_path, const up_run_input *inputs, int32_t n_inputs, char *err,
                          size_t err_size);

/* up_output_path_check on -o and the inputs the options name; true when -o is not given
 * (the default path under results/runs/ is new by its timestamp). */
bool up_output_path_check_options(const up_options *opt, char *err, size_t err_size);

#endif

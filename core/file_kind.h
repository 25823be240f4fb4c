/* file_kind.h — words for what a path is, for messages that refuse a path which is not a
 * regular file ("/dev/zero is a character device"), and opening only regular files. Knows
 * nothing of why another kind is refused. */
#ifndef UP_FILE_KIND_H
#define UP_FILE_KIND_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* "a directory", "a character device", "a block device", "a FIFO (named pipe)",
 * "a socket", or "not a regular file" for anything else that is not one. */
const char *up_file_kind(mode_t mode);

/* Open a regular file for reading ("r"): a device or a pipe has no end to read to, and
 * opening a FIFO would block, so the kind is checked before opening and again on the
 * open file. NULL with "<what> <path>: ..." in err otherwise (what: "trace", ...). */
FILE *up_open_regular_file(const char *path, const char *what, char *err, size_t err_size);

#endif

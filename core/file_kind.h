/* file_kind.h — words for what a path is, for messages that refuse a path which is not a
 * regular file ("/dev/zero is a character device"). Knows nothing of why it is refused. */
#ifndef UP_FILE_KIND_H
#define UP_FILE_KIND_H

#include <sys/types.h>

/* "a directory", "a character device", "a block device", "a FIFO (named pipe)",
 * "a socket", or "not a regular file" for anything else that is not one. */
const char *up_file_kind(mode_t mode);

#endif

/* file_kind.c — see file_kind.h. */
#include "core/file_kind.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fatal.h"

const char *up_file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

FILE *up_open_regular_file(const char *path, const char *what, char *err, size_t err_size) {
  struct stat st;
  if (stat(path, &st) != 0) {
    up_error(err, err_size, "%s %s: cannot open: %s", what, path, strerror(errno));
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    up_error(err, err_size, "%s %s: is %s, not a regular file", what, path, up_file_kind(st.st_mode));
    return NULL;
  }
  FILE *f = fopen(path, "r");
  if (!f) {
    up_error(err, err_size, "%s %s: cannot open: %s", what, path, strerror(errno));
    return NULL;
  }
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    up_error(err, err_size, "%s %s: changed while being opened and is no longer a regular file", what, path);
    fclose(f);
    return NULL;
  }
  return f;
}

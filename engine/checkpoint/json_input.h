/* json_input.h — strict reading of JSON inputs (safetensors headers, Hugging Face
 * config.json and index files) with cJSON: parse text that need not be NUL-terminated
 * or a whole file, with messages naming the source and the byte where parsing
 * stopped; find duplicate keys, which cJSON keeps but lookups would silently shadow;
 * read numbers that must be exact integers. */
#ifndef UP_JSON_INPUT_H
#define UP_JSON_INPUT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest integer a JSON number (a double in cJSON) holds exactly: 2^53. */
#define UP_JSON_MAX_EXACT_INTEGER 9007199254740992.0

/* Parse len bytes of text (an embedded NUL or trailing non-space is an error). On
 * failure returns NULL and writes "<source>: <what>" into err. */
cJSON *up_json_parse_text(const char *text, size_t len, const char *source, char *err, size_t err_size);

/* Read and parse a whole file of at most max_bytes; errors name the path. */
cJSON *up_json_parse_file(const char *path, size_t max_bytes, char *err, size_t err_size);

/* The first key (in sorted order) that appears twice among an object's members, or
 * NULL when all are distinct. */
const char *up_json_duplicate_key(const cJSON *object);

/* The same over every object nested in item (arrays included), depth first: the first
 * duplicate found, or NULL. */
const char *up_json_duplicate_key_anywhere(const cJSON *item);

/* An integral JSON number in [min, max] (bounds within +-2^53). */
bool up_json_integer(const cJSON *item, int64_t min, int64_t max, int64_t *out);

#endif

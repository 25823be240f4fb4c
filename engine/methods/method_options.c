/* method_options.c — method specs as text, for every method alike: parsing
 * "name:key=value:..." against a method's declarative option list (method.h), the
 * per-method defaults that alias flags change, and the canonical description the run
 * file records. Knows no method: each one's options come from its own table. */
#include "engine/methods/method.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

/* ---- values ------------------------------------------------------------------ */

/* strto* accept leading blanks and a '+': a spec should not. */
static bool looks_numeric(const char *text) {
  if (text[0] == '-') text++;
  return isdigit((unsigned char)text[0]) || (text[0] == '.' && isdigit((unsigned char)text[1]));
}

/* A REAL option whose default is "preset" takes the model's value when the spec is
 * resolved (the method's resolve hook fills it); until then NaN stands for it. */
static bool takes_preset(const up_method_option *o) { return strcmp(o->default_value, "preset") == 0; }

static bool parse_real(const up_method_option *o, const char *text, float *out, char *err, size_t err_size) {
  if (takes_preset(o) && strcmp(text, "preset") == 0) {
    *out = NAN;
    return true;
  }
  char *end = NULL;
  errno = 0;
  const double v = looks_numeric(text) ? strtod(text, &end) : NAN;
  if (end == NULL || *end != '\0' || errno == ERANGE || !isfinite(v))
    return up_error(err, err_size, "'%s' is not a number", text);
  if ((o->lo_open ? v <= o->lo : v < o->lo) || v > o->hi)
    return up_error(err, err_size, "'%s' must be in %s%g, %g]", text, o->lo_open ? "(" : "[", o->lo, o->hi);
  *out = (float)v;
  return true;
}

static bool parse_int(const up_method_option *o, const char *text, int32_t *out, char *err, size_t err_size) {
  char *end = NULL;
  errno = 0;
  const long long v = looks_numeric(text) ? strtoll(text, &end, 10) : 0;
  if (end == NULL || *end != '\0' || errno == ERANGE) return up_error(err, err_size, "'%s' is not an integer", text);
  if (v < (long long)o->lo) return up_error(err, err_size, "'%s' must be >= %lld", text, (long long)o->lo);
  if (v > (long long)o->hi) return up_error(err, err_size, "'%s' must be <= %lld", text, (long long)o->hi);
  *out = (int32_t)v;
  return true;
}

/* "preset" or indices joined by '+' ("7+11+15"; ',' too, where no comma separates
 * methods, as in --drop-layers), each once, in the order given. */
static bool parse_layers(const char *text, up_layer_list *out, char *err, size_t err_size) {
  if (strcmp(text, "preset") == 0) {
    *out = (up_layer_list){.n = -1};
    return true;
  }
  if (text[0] == '\0') return up_error(err, err_size, "empty list");
  up_layer_list list = {.n = 0};
  for (const char *item = text;;) {
    const size_t len = strcspn(item, "+,");
    char buf[32];
    if (len == 0) return up_error(err, err_size, "empty item in '%s'", text);
    snprintf(buf, sizeof buf, "%.*s", (int)len, item);
    char *end = NULL;
    errno = 0;
    const long v = looks_numeric(buf) && len < sizeof buf ? strtol(buf, &end, 10) : -1;
    if (end == NULL || *end != '\0' || errno == ERANGE || v < 0 || v >= UP_MAX_LAYERS)
      return up_error(err, err_size, "'%s' is not a layer index (0..%d) or 'preset'", buf, UP_MAX_LAYERS - 1);
    for (int32_t i = 0; i < list.n; ++i)
      if (list.layers[i] == v) return up_error(err, err_size, "%ld appears twice in '%s'", v, text);
    list.layers[list.n++] = (int32_t)v; /* no repeats of 0..UP_MAX_LAYERS-1: never more than fit */
    if (item[len] == '\0') break;
    item += len + 1;
  }
  *out = list;
  return true;
}

/* A CHOICE option's value by name: its index among the '|'-separated choices its
 * default_value lists; that list itself stands for its first choice, the default. */
static bool parse_choice(const up_method_option *o, const char *text, int32_t *out, char *err, size_t err_size) {
  const char *name = o->default_value;
  if (strcmp(text, name) == 0) { /* the default: the first choice */
    *out = 0;
    return true;
  }
  for (int32_t index = 0;; ++index) {
    const size_t len = strcspn(name, "|");
    if (strlen(text) == len && strncmp(name, text, len) == 0) {
      *out = index;
      return true;
    }
    if (name[len] == '\0') return up_error(err, err_size, "'%s' is not one of %s", text, o->default_value);
    name += len + 1;
  }
}

/* The name of choice `index` of a CHOICE option. */
static void format_choice(const up_method_option *o, int32_t index, char *buf, size_t size) {
  const char *name = o->default_value;
  for (int32_t i = 0; i < index && strchr(name, '|'); ++i) name = strchr(name, '|') + 1;
  snprintf(buf, size, "%.*s", (int)strcspn(name, "|"), name);
}

static bool parse_value(const up_method_option *o, const char *text, void *options, char *err, size_t err_size) {
  unsigned char *at = (unsigned char *)options + o->offset;
  switch (o->kind) {
    case UP_OPTION_REAL: return parse_real(o, text, (float *)(void *)at, err, err_size);
    case UP_OPTION_INT: return parse_int(o, text, (int32_t *)(void *)at, err, err_size);
    case UP_OPTION_LAYERS: return parse_layers(text, (up_layer_list *)(void *)at, err, err_size);
    case UP_OPTION_CHOICE: return parse_choice(o, text, (int32_t *)(void *)at, err, err_size);
    case UP_OPTION_PATH:
      if (strlen(text) >= UP_METHOD_PATH_MAX)
        return up_error(err, err_size, "file name longer than %d characters", UP_METHOD_PATH_MAX - 1);
      if (strpbrk(text, ":,")) return up_error(err, err_size, "'%s': a file name here may not contain ':' or ','", text);
      snprintf((char *)at, UP_METHOD_PATH_MAX, "%s", text);
      return true;
  }
  return up_error(err, err_size, "option %s has no kind", o->key);
}

/* The shortest text that reads back as the same float. */
static void format_real(float v, char *buf, size_t size) {
  if (isnan(v)) {
    snprintf(buf, size, "preset");
    return;
  }
  for (int digits = 1; digits <= 9; ++digits) {
    snprintf(buf, size, "%.*g", digits, (double)v);
    if (strtof(buf, NULL) == v) return;
  }
}

static size_t format_value(const up_method_option *o, const void *options, char *buf, size_t size) {
  const unsigned char *at = (const unsigned char *)options + o->offset;
  switch (o->kind) {
    case UP_OPTION_REAL: format_real(*(const float *)(const void *)at, buf, size); break;
    case UP_OPTION_INT: snprintf(buf, size, "%" PRId32, *(const int32_t *)(const void *)at); break;
    case UP_OPTION_PATH: snprintf(buf, size, "%s", (const char *)at); break;
    case UP_OPTION_CHOICE: format_choice(o, *(const int32_t *)(const void *)at, buf, size); break;
    case UP_OPTION_LAYERS: {
      const up_layer_list *list = (const up_layer_list *)(const void *)at;
      if (list->n < 0) {
        snprintf(buf, size, "preset");
        break;
      }
      size_t used = 0;
      buf[0] = '\0';
      for (int32_t i = 0; i < list->n && used < size; ++i)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRId32, i ? "+" : "", list->layers[i]);
      break;
    }
  }
  return strlen(buf);
}

/* ---- specs ------------------------------------------------------------------- */

static const up_method_option *find_option(const up_method_ops *method, const char *key, size_t key_len) {
  for (int32_t i = 0; i < method->n_options; ++i)
    if (strlen(method->options[i].key) == key_len && strncmp(method->options[i].key, key, key_len) == 0)
      return &method->options[i];
  return NULL;
}

static void option_keys(const up_method_ops *method, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int32_t i = 0; i < method->n_options && used < size; ++i)
    used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", method->options[i].key);
}

void up_method_spec_default(up_method_spec *spec, const up_method_ops *method) {
  UP_ASSERT(method->options_size <= UP_METHOD_OPTIONS_BYTES, "method %s: options of %zu bytes", method->name,
            method->options_size);
  memset(spec, 0, sizeof *spec);
  spec->method = method;
  snprintf(spec->label, sizeof spec->label, "%s", method->name);
  for (int32_t i = 0; i < method->n_options; ++i) {
    char err[256];
    const bool ok = parse_value(&method->options[i], method->options[i].default_value, spec->options, err, sizeof err);
    UP_ASSERT(ok, "method %s: default of option %s: %s", method->name, method->options[i].key, err);
  }
}

void up_method_defaults_init(up_method_defaults *defaults) {
  memset(defaults, 0, sizeof *defaults);
  for (int32_t i = 0; i < up_method_count(); ++i) up_method_spec_default(&defaults->spec[i], up_method_at(i));
}

const up_method_spec *up_method_defaults_of(const up_method_defaults *defaults, const char *method) {
  const int32_t i = up_method_index(up_method_find(method));
  return i < 0 ? NULL : &defaults->spec[i];
}

bool up_method_defaults_set(up_method_defaults *defaults, const char *method, const char *key, const char *value,
                            char *err, size_t err_size) {
  const int32_t i = up_method_index(up_method_find(method));
  if (i < 0) return up_error(err, err_size, "unknown method '%s'", method);
  const up_method_option *o = find_option(defaults->spec[i].method, key, strlen(key));
  if (!o) return up_error(err, err_size, "method %s has no option '%s'", method, key);
  return parse_value(o, value, defaults->spec[i].options, err, err_size);
}

/* Apply "key=value" options, the text after the method name, each key at most once. */
static bool parse_options(const char *opts, up_method_spec *out, char *err, size_t err_size) {
  const up_method_ops *method = out->method;
  enum { MAX_OPTIONS = 32 };
  UP_ASSERT(method->n_options <= MAX_OPTIONS, "method %s has %d options", method->name, (int)method->n_options);
  bool given[MAX_OPTIONS] = {false}; /* by option index */
  for (const char *opt = opts;;) {
    const size_t len = strcspn(opt, ":");
    if (len == 0)
      return up_error(err, err_size, opt[0] == '\0' ? "a trailing ':' ends the spec" : "empty option between two ':'");
    const char *eq = memchr(opt, '=', len);
    if (!eq) return up_error(err, err_size, "option '%.*s' is not key=value", (int)len, opt);
    const up_method_option *o = find_option(method, opt, (size_t)(eq - opt));
    if (!o) {
      char keys[256];
      option_keys(method, keys, sizeof keys);
      return up_error(err, err_size, "unknown option '%.*s' (%s takes %s)", (int)(eq - opt), opt, method->name,
                  keys[0] ? keys : "no options");
    }
    const ptrdiff_t index = o - method->options;
    if (given[index]) return up_error(err, err_size, "option %s is given twice", o->key);
    given[index] = true;
    char value[UP_METHOD_TEXT_MAX], why[256];
    snprintf(value, sizeof value, "%.*s", (int)(len - (size_t)(eq + 1 - opt)), eq + 1);
    if (!parse_value(o, value, out->options, why, sizeof why))
      return up_error(err, err_size, "option %s: %s", o->key, why);
    if (opt[len] == '\0') return true;
    opt += len + 1;
  }
}

bool up_method_spec_parse(const char *text, const up_method_defaults *defaults, up_method_spec *out, char *err,
                          size_t err_size) {
  if (strlen(text) >= UP_METHOD_TEXT_MAX)
    return up_error(err, err_size, "method spec '%.40s...' is longer than %d characters", text, UP_METHOD_TEXT_MAX - 1);
  const size_t name_len = strcspn(text, ":");
  char names[256];
  up_method_names(names, sizeof names);
  if (name_len == 0) return up_error(err, err_size, "empty method name (known: %s)", names);
  const up_method_ops *method = NULL;
  for (int32_t i = 0; i < up_method_count(); ++i)
    if (strlen(up_method_at(i)->name) == name_len && strncmp(up_method_at(i)->name, text, name_len) == 0)
      method = up_method_at(i);
  if (!method) return up_error(err, err_size, "unknown method '%.*s' (known: %s)", (int)name_len, text, names);
  if (defaults) *out = defaults->spec[up_method_index(method)];
  else up_method_spec_default(out, method);
  snprintf(out->label, sizeof out->label, "%.*s", (int)sizeof out->label - 1, text);
  return text[name_len] == '\0' || parse_options(text + name_len + 1, out, err, err_size);
}

bool up_method_spec_describe(const up_method_spec *spec, char *buf, size_t size) {
  const up_method_ops *method = spec->method;
  size_t used = (size_t)snprintf(buf, size, "%s", method->name);
  for (int32_t i = 0; i < method->n_options && used < size; ++i) {
    char value[UP_METHOD_TEXT_MAX];
    format_value(&method->options[i], spec->options, value, sizeof value);
    used += (size_t)snprintf(buf + used, size - used, ":%s=%s", method->options[i].key, value);
  }
  return used < size;
}

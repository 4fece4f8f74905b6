/* build_request: turns a request spec into {method, url, headers = {"Name: value"...}, body}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"


typedef struct {
  core_text key, value;
  size_t order; /* keeps repeated keys in their given order after sorting */
  char number[48];
} pair;

static const char *const METHODS[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", NULL};
static const char *const SPEC_KEYS[] = {"method", "base_url", "path", "query", "headers", "json", "body", NULL};

/* RFC 3986 unreserved characters, as a table: the URL is encoded on every call. */
static const unsigned char UNRESERVED[256] = {
  ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
  ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
  ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
  ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
  ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
  ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
  ['9'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
};

#define unreserved(c) (UNRESERVED[(unsigned char)(c)])

static size_t encoded_len(core_text x)
{
  size_t n = 0, i;
  for (i = 0; i < x.len; i++) n += unreserved((unsigned char)x.s[i]) ? 1 : 3;
  return n;
}

static char *percent_encode(char *out, core_text x)
{
  static const char HEX[] = "0123456789ABCDEF";
  size_t i;
  for (i = 0; i < x.len; i++) {
    unsigned char c = (unsigned char)x.s[i];
    if (unreserved(c)) {
      *out++ = (char)c;
    } else {
      *out++ = '%';
      *out++ = HEX[c >> 4];
      *out++ = HEX[c & 15];
    }
  }
  return out;
}

static int has_ctl(const char *s, size_t len, int space_too)
{
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r' || c == '\n' || c == 0) return 1;
    if (space_too && (c <= 0x20 || c == 0x7f)) return 1;
  }
  return 0;
}

static int compare_pairs(const pair *x, const pair *y)
{
  size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
  int c = memcmp(x->key.s, y->key.s, n);
  if (c != 0) return c;
  if (x->key.len != y->key.len) return x->key.len < y->key.len ? -1 : 1;
  return x->order < y->order ? -1 : (x->order > y->order);
}

/* Insertion sort for the usual handful of pairs (the order field makes the order total). */
static int compare_qsort(const void *a, const void *b) { return compare_pairs(a, b); }

static void sorted(pair *ps, size_t n)
{
  size_t i, j;
  if (n > 16) {
    qsort(ps, n, sizeof(pair), compare_qsort);
  } else {
    for (i = 1; i < n; i++) {
      pair p = ps[i];
      for (j = i; j > 0 && compare_pairs(&ps[j - 1], &p) > 0; j--) ps[j] = ps[j - 1];
      ps[j] = p;
    }
  }
  for (i = 0; i < n; i++)
    if (!ps[i].value.s) ps[i].value.s = ps[i].number;
}

/* Stringifies a scalar query value at idx; the text stays valid while the table holds it. */
static void scalar_value(lua_State *L, int idx, pair *p, const char *key)
{
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    p->value.s = lua_tolstring(L, idx, &p->value.len);
    break;
  case LUA_TNUMBER: {
    lua_Number n = lua_tonumber(L, idx);
#if COMPAT_HAS_INTEGERS
    if (lua_isinteger(L, idx)) {
      snprintf(p->number, sizeof p->number, "%lld", (long long)lua_tointeger(L, idx));
    } else
#endif
    if (n >= -9007199254740992.0 && n <= 9007199254740992.0 && (lua_Number)(long long)n == n) {
      snprintf(p->number, sizeof p->number, "%lld", (long long)n);
    } else {
      snprintf(p->number, sizeof p->number, "%.14g", (double)n);
    }
    p->value.s = NULL; /* the text is in p->number; pointed to after sorting moves p */
    p->value.len = strlen(p->number);
    break;
  }
  case LUA_TBOOLEAN:
    p->value.s = lua_toboolean(L, idx) ? "true" : "false";
    p->value.len = strlen(p->value.s);
    break;
  default:
    luaL_error(L, "build_request: query value for '%s' must be a string, number, boolean or array", key);
  }
}

#define STACK_PAIRS 16
#define STACK_URL 1024

/* Adds the pairs of one query entry (key at -2, value at -1) at pairs[*k...], up to cap. */
static size_t query_entry(lua_State *L, pair *pairs, size_t *k, size_t cap)
{
  core_text key;
  if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "build_request: query keys must be strings");
  key.s = lua_tolstring(L, -2, &key.len);
  if (lua_type(L, -1) == LUA_TTABLE) {
    size_t j, m = compat_rawlen(L, -1);
    for (j = 1; j <= m && *k < cap; j++) {
      lua_rawgeti(L, -1, (int)j);
      if (lua_type(L, -1) == LUA_TTABLE) luaL_error(L, "build_request: nested query value for '%s'", key.s);
      pairs[*k].key = key;
      pairs[*k].order = *k;
      scalar_value(L, -1, &pairs[*k], key.s);
      lua_pop(L, 1);
      (*k)++;
    }
    return m;
  }
  if (*k < cap) {
    pairs[*k].key = key;
    pairs[*k].order = *k;
    scalar_value(L, -1, &pairs[*k], key.s);
    (*k)++;
  }
  return 1;
}

/* Reads the query table at q into a sorted pair array: `local` when it fits (one pass), else
 * a userdata pushed on the stack (collected even if a later call raises) and a second pass. */
static pair *read_query(lua_State *L, int q, size_t *count, pair *local)
{
  size_t n = 0, k = 0;
  pair *pairs = local;
  lua_pushnil(L);
  while (lua_next(L, q)) {
    n += query_entry(L, local, &k, STACK_PAIRS);
    lua_pop(L, 1);
  }
  if (n > STACK_PAIRS) {
    pairs = lua_newuserdata(L, n * sizeof(pair));
    k = 0;
    lua_pushnil(L);
    while (lua_next(L, q)) {
      query_entry(L, pairs, &k, n);
      lua_pop(L, 1);
    }
  }
  sorted(pairs, k);
  *count = k;
  return pairs;
}

int core_method_known(const char *method)
{
  int i;
  for (i = 0; METHODS[i]; i++)
    if (strcmp(METHODS[i], method) == 0) return 1;
  return 0;
}

const char *core_build_url(lua_State *L, core_text base, core_text path, int q, char *local, size_t cap,
                           size_t *len)
{
  size_t total, n = 0, i;
  pair *pairs = NULL, query[STACK_PAIRS];
  char *out, *w;
  int trailing, leading, has_query;

  if (has_ctl(base.s, base.len, 1) || has_ctl(path.s, path.len, 1)) {
    core_fail(L, "config", "base_url and path must not contain spaces or control characters");
    return NULL;
  }
  if (q) pairs = read_query(L, q, &n, query);

  trailing = base.len > 0 && base.s[base.len - 1] == '/';
  leading = path.len > 0 && path.s[0] == '/';
  total = base.len + path.len + 2;
  for (i = 0; i < n; i++) total += encoded_len(pairs[i].key) + encoded_len(pairs[i].value) + 2;
  out = w = total <= cap ? local : lua_newuserdata(L, total);
  memcpy(w, base.s, base.len);
  w += base.len;
  if (path.len > 0) {
    if (trailing && leading) {
      path.s++;
      path.len--;
    } else if (!trailing && !leading) {
      *w++ = '/';
    }
    memcpy(w, path.s, path.len);
    w += path.len;
  }
  has_query = n > 0 && memchr(out, '?', (size_t)(w - out)) != NULL;
  for (i = 0; i < n; i++) {
    *w++ = i > 0 || has_query ? '&' : '?';
    w = percent_encode(w, pairs[i].key);
    *w++ = '=';
    w = percent_encode(w, pairs[i].value);
  }
  *w = 0;
  *len = (size_t)(w - out);
  return out;
}

int core_push_url(lua_State *L, core_text base, core_text path, int q)
{
  char local[STACK_URL];
  size_t len;
  const char *url = core_build_url(L, base, path, q, local, sizeof local, &len);
  if (!url) return 2;
  lua_pushlstring(L, url, len);
  return 1;
}

/* Pushes the spec's full URL, or returns 0 after pushing nil, err. */
static int push_url(lua_State *L, int spec)
{
  core_text base, path = {"", 0};
  int q = 0;
  lua_getfield(L, spec, "base_url");
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "build_request: base_url must be a string");
  base.s = lua_tolstring(L, -1, &base.len);
  lua_getfield(L, spec, "path");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "build_request: path must be a string");
    path.s = lua_tolstring(L, -1, &path.len);
  }
  lua_getfield(L, spec, "query");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TTABLE) luaL_error(L, "build_request: query must be a table");
    q = lua_gettop(L);
  }
  return core_push_url(L, base, path, q) == 1;
}

/* Pushes the "Name: value" array, or returns 0 after pushing nil, err. */
static int push_headers(lua_State *L, int spec, int with_json)
{
  int has_ct = 0, has_accept = 0, t;
  size_t n = 0, i;
  pair *hs = NULL, local[STACK_PAIRS];

  lua_getfield(L, spec, "headers");
  t = lua_gettop(L);
  if (!lua_isnil(L, t)) {
    if (lua_type(L, t) != LUA_TTABLE) luaL_error(L, "build_request: headers must be a table");
    lua_pushnil(L);
    while (lua_next(L, t)) {
      n++;
      lua_pop(L, 1);
    }
    hs = n <= STACK_PAIRS ? local : lua_newuserdata(L, n * sizeof(pair));
    n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
      pair *p = &hs[n];
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "build_request: header names must be strings");
      p->key.s = lua_tolstring(L, -2, &p->key.len);
      p->order = n;
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "build_request: header '%s' must be a string or number", p->key.s);
      scalar_value(L, -1, p, p->key.s);
      if (p->key.len == 0 || has_ctl(p->key.s, p->key.len, 1) || memchr(p->key.s, ':', p->key.len) ||
          has_ctl(p->value.s ? p->value.s : p->number, p->value.len, 0)) {
        core_fail(L, "config", "header names and values must not contain CR, LF or NUL (names: no ':' or spaces)");
        return 0;
      }
      if (core_name_is(p->key.s, p->key.len, "content-type")) has_ct = 1;
      if (core_name_is(p->key.s, p->key.len, "accept")) has_accept = 1;
      n++;
      lua_pop(L, 1);
    }
    sorted(hs, n);
  }
  lua_createtable(L, (int)n + 2, 0);
  for (i = 0; i < n; i++) {
    lua_pushlstring(L, hs[i].key.s, hs[i].key.len);
    lua_pushliteral(L, ": ");
    lua_pushlstring(L, hs[i].value.s, hs[i].value.len);
    lua_concat(L, 3);
    lua_rawseti(L, -2, (int)i + 1);
  }
  if (with_json && !has_ct) {
    lua_pushliteral(L, "Content-Type: application/json");
    lua_rawseti(L, -2, (int)++n);
  }
  if (with_json && !has_accept) {
    lua_pushliteral(L, "Accept: application/json");
    lua_rawseti(L, -2, (int)++n);
  }
  return 1;
}

static int l_build_request(lua_State *L)
{
  const char *method = "GET";
  int has_json, has_body, i;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);

  /* Unknown keys are programmer errors (typos would otherwise be silently ignored). */
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    for (i = 0; k && SPEC_KEYS[i] && (k[0] != SPEC_KEYS[i][0] || strcmp(k, SPEC_KEYS[i]) != 0); i++) {}
    if (!k || !SPEC_KEYS[i]) luaL_error(L, "build_request: unknown spec field '%s'", k ? k : "?");
    lua_pop(L, 1);
  }

  lua_getfield(L, 1, "method");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "build_request: method must be a string");
    method = lua_tostring(L, -1);
    if (!core_method_known(method)) luaL_error(L, "build_request: unsupported method '%s'", method);
  }
  lua_getfield(L, 1, "json");
  lua_getfield(L, 1, "body");
  has_json = !lua_isnil(L, 3);
  has_body = !lua_isnil(L, 4);
  if (has_json && has_body) luaL_error(L, "build_request: give either json or body, not both");
  if (has_body && lua_type(L, 4) != LUA_TSTRING) luaL_error(L, "build_request: body must be a string");

  lua_createtable(L, 0, 4); /* 5: result */
  lua_pushstring(L, method);
  lua_setfield(L, 5, "method");
  if (!push_url(L, 1)) return 2;
  lua_setfield(L, 5, "url");
  lua_settop(L, 5);
  if (!push_headers(L, 1, has_json)) return 2;
  lua_setfield(L, 5, "headers");
  lua_settop(L, 5);
  if (has_json) {
    if (core_json_encode_value(L, 3) != 1) return 2;
    lua_setfield(L, 5, "body");
  } else if (has_body) {
    lua_pushvalue(L, 4);
    lua_setfield(L, 5, "body");
  }
  return 1;
}

static const luaL_Reg request_funcs[] = {
  {"build_request", l_build_request},
  {NULL, NULL}
};

void core_open_request(lua_State *L)
{
  compat_setfuncs(L, request_funcs, 0);
}

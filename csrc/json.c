/* JSON through a private lua-cjson instance, with exact big integers and an empty-array sentinel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

/* Registry keys (addresses are unique per process, the registry per state). */
static const char encode_key = 'e';
static const char decode_key = 'd';

/* Encoded by cjson as a JSON string that cannot come from ordinary text; replaced by []. */
#define SENTINEL "\001loyalty.empty_array\001"
#define SENTINEL_ENCODED "\"\\u0001loyalty.empty_array\\u0001\""
#define MAX_DEPTH 1000
#define EXACT_DOUBLE_LIMIT 9007199254740992.0 /* 2^53 */

static void push_registered(lua_State *L, const char *key)
{
  lua_pushlightuserdata(L, (void *)key);
  lua_rawget(L, LUA_REGISTRYINDEX);
}

/* ---- decode ---------------------------------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* True when the digits (no sign) denote a magnitude above 2^53. */
static int beyond_exact(const char *d, size_t n)
{
  while (n > 1 && *d == '0') { d++; n--; }
  if (n != 16) return n > 16;
  return memcmp(d, "9007199254740992", 16) > 0;
}

/* True when the number literal s[0..n) (a fraction or an exponent) is beyond the range of a
 * double: cjson would make it inf. Decided from the decimal exponent of its first significant
 * digit, and by strtod on a short copy at the boundary. */
static int literal_overflows(const char *s, size_t n)
{
  size_t i = 0, int_digits = 0, lead_zeros = 0;
  long long exp10 = 0, e = 0;
  int sig = 0, eneg = 0;
  char copy[64];
  size_t c = 0;
  if (i < n && s[i] == '-') i++;
  while (i < n && s[i] == '0') i++;
  for (; i < n && is_digit(s[i]); i++, int_digits++) {
    sig = 1;
    if (c < 40) copy[c++] = s[i];
  }
  if (i < n && s[i] == '.') {
    for (i++; i < n && is_digit(s[i]); i++) {
      if (!sig && s[i] == '0') {
        lead_zeros++;
        continue;
      }
      sig = 1;
      if (c < 40) copy[c++] = s[i];
    }
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
    for (; i < n && is_digit(s[i]); i++)
      if (e < 100000) e = e * 10 + (s[i] - '0');
  }
  if (!sig) return 0;
  exp10 = (int_digits > 0 ? (long long)int_digits - 1 : -(long long)lead_zeros - 1) + (eneg ? -e : e);
  if (exp10 < 308) return 0;
  if (exp10 > 308) return 1;
  /* d.ddd…e308: strtod says whether it rounds to a finite double. */
  if (c < 1) return 0;
  memmove(copy + 2, copy + 1, c - 1);
  copy[1] = '.';
  snprintf(copy + c + 1, sizeof copy - c - 1, "e308");
  return isinf(strtod(copy, NULL));
}

/* Walks the JSON text outside strings; each integer literal beyond 2^53 is counted and,
 * when `out` is given, copied into it wrapped in quotes. Returns the count. A number literal
 * beyond the range of a double sets *overflow (when given). */
static size_t quote_big_integers(const char *s, size_t len, luaL_Buffer *out, int *overflow)
{
  size_t i = 0, copied = 0, found = 0;
  while (i < len) {
    char c = s[i];
    if (c == '"') {
      for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
      i++;
    } else if (c == '-' || is_digit(c)) {
      size_t start = i, digits;
      if (c == '-') i++;
      digits = i;
      while (i < len && is_digit(s[i])) i++;
      if (i < len && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) {
        while (i < len && (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' ||
                           s[i] == '+' || s[i] == '-'))
          i++;
        if (overflow && !*overflow) *overflow = literal_overflows(s + start, i - start);
      } else if (i > digits && beyond_exact(s + digits, i - digits)) {
        found++;
        if (out) {
          luaL_addlstring(out, s + copied, start - copied);
          luaL_addchar(out, '"');
          luaL_addlstring(out, s + start, i - start);
          luaL_addchar(out, '"');
          copied = i;
        }
      }
      if (i == start) i++;
    } else {
      i++;
    }
  }
  if (out && copied < len) luaL_addlstring(out, s + copied, len - copied);
  return found;
}

#if COMPAT_HAS_INTEGERS
/* cjson yields floats; integral ones that are exact become Lua integers. */
static void integralize(lua_State *L, int t, int depth)
{
  if (depth > MAX_DEPTH) return;
  luaL_checkstack(L, 4, "json nesting");
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int vt = lua_type(L, -1);
    if (vt == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number n = lua_tonumber(L, -1);
      if (n >= -EXACT_DOUBLE_LIMIT && n <= EXACT_DOUBLE_LIMIT && (lua_Number)(lua_Integer)n == n) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushinteger(L, (lua_Integer)n);
        lua_rawset(L, t);
        continue;
      }
    } else if (vt == LUA_TTABLE) {
      integralize(L, lua_absindex(L, -1), depth + 1);
    }
    lua_pop(L, 1);
  }
}
#endif

int core_json_decode_buffer(lua_State *L, const char *s, size_t len, size_t raw_cap)
{
  int overflow = 0;
  size_t big;
  /* The fast path refuses integers beyond 2^53 and literals beyond a double: only the cjson
   * path below meets them, and it quotes the first and refuses the second. */
  if (core_json_fast_decode(L, s, len)) goto decoded;
  push_registered(L, &decode_key);
  big = quote_big_integers(s, len, NULL, &overflow);
  if (overflow) {
    /* JSON has no infinity: a number beyond a double's range is an error, not inf. */
    lua_pop(L, 1);
    lua_pushnil(L);
    core_push_error(L, "decode", "number out of range (beyond a double) in JSON");
    lua_pushlstring(L, s, len < raw_cap ? len : raw_cap);
    lua_setfield(L, -2, "raw");
    return 2;
  }
  if (big > 0) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    quote_big_integers(s, len, &b, NULL);
    luaL_pushresult(&b);
  } else {
    lua_pushlstring(L, s, len);
  }
  if (lua_pcall(L, 1, 1, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    lua_pushnil(L);
    core_push_error(L, "decode", msg ? msg : "invalid JSON");
    lua_pushlstring(L, s, len < raw_cap ? len : raw_cap);
    lua_setfield(L, -2, "raw");
    lua_remove(L, -3);
    return 2;
  }
decoded:
#if COMPAT_HAS_INTEGERS
  if (lua_type(L, -1) == LUA_TTABLE) {
    integralize(L, lua_gettop(L), 1);
  } else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
    lua_Number n = lua_tonumber(L, -1);
    if (n >= -EXACT_DOUBLE_LIMIT && n <= EXACT_DOUBLE_LIMIT && (lua_Number)(lua_Integer)n == n) {
      lua_pop(L, 1);
      lua_pushinteger(L, (lua_Integer)n);
    }
  }
#endif
  return 1;
}

static int l_json_decode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  size_t raw_cap = (size_t)compat_optcount(L, 2, LOYALTY_DEFAULT_RAW_CAP);
  return core_json_decode_buffer(L, s, len, raw_cap);
}

/* ---- encode ---------------------------------------------------------------------------- */

/* cjson prints numbers with 14 significant digits: refuse values that would not survive. */
static int number_survives(lua_State *L, int i)
{
  lua_Number d;
  char text[40];
#if COMPAT_HAS_INTEGERS
  if (lua_isinteger(L, i)) {
    lua_Integer v = lua_tointeger(L, i);
    if (v > -100000000000000LL && v < 100000000000000LL) return 1;
    d = (lua_Number)v;
    if (d >= 9.2e18 || d <= -9.2e18 || (lua_Integer)d != v) return 0;
  } else
#endif
  {
    d = lua_tonumber(L, i);
    if (d != d || d - d != 0) return 1; /* NaN/inf: cjson reports those itself */
    if (d > -1e14 && d < 1e14) return 1;
    if (d >= 9.2e18 || d <= -9.2e18 || (lua_Number)(long long)d != d) return 1; /* not an id */
  }
  snprintf(text, sizeof text, "%.14g", (double)d);
  return strtod(text, NULL) == d;
}

/* Pre-flight over the value: finds the sentinel and numbers cjson would round. */
static const char *inspect(lua_State *L, int i, int depth, int *uses_sentinel)
{
  int t = lua_type(L, i);
  if (t == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    if (len == sizeof(SENTINEL) - 1 && memcmp(s, SENTINEL, len) == 0) *uses_sentinel = 1;
  } else if (t == LUA_TNUMBER) {
    if (!number_survives(L, i)) return "number cannot be encoded exactly (more than 14 significant digits); pass it as a string";
  } else if (t == LUA_TTABLE) {
    /* Stop at the first over-deep path, as cjson does: a cycle must not be walked in full. */
    if (depth > MAX_DEPTH) return "cannot encode: excessive nesting (cycle?)";
    luaL_checkstack(L, 3, "json nesting");
    lua_pushnil(L);
    while (lua_next(L, i)) {
      const char *bad = inspect(L, lua_gettop(L), depth + 1, uses_sentinel);
      if (bad) { lua_pop(L, 2); return bad; }
      lua_pop(L, 1);
    }
  }
  return NULL;
}

static void replace_sentinel(lua_State *L)
{
  size_t len, i = 0, copied = 0;
  const size_t slen = sizeof(SENTINEL_ENCODED) - 1;
  const char *s = lua_tolstring(L, -1, &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  /* Positioned outside JSON strings at each step; strings are skipped whole. */
  while (i < len) {
    const char *q = memchr(s + i, '"', len - i);
    if (!q) break;
    i = (size_t)(q - s);
    if (i + slen <= len && memcmp(q, SENTINEL_ENCODED, slen) == 0) {
      luaL_addlstring(&b, s + copied, i - copied);
      luaL_addlstring(&b, "[]", 2);
      i += slen;
      copied = i;
    } else {
      for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
      i++;
    }
  }
  if (copied < len) luaL_addlstring(&b, s + copied, len - copied);
  luaL_pushresult(&b);
  lua_remove(L, -2);
}

int core_json_encode_value(lua_State *L, int idx)
{
  int uses_sentinel = 0;
  const char *bad;
  idx = compat_absindex(L, idx);
  bad = inspect(L, idx, 1, &uses_sentinel);
  if (bad) return core_fail(L, "config", bad);
  push_registered(L, &encode_key);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    lua_pushnil(L);
    core_push_error(L, "config", msg ? msg : "cannot encode JSON");
    lua_remove(L, -3);
    return 2;
  }
  if (uses_sentinel) replace_sentinel(L);
  return 1;
}

static int l_json_encode(lua_State *L)
{
  luaL_checkany(L, 1);
  return core_json_encode_value(L, 1);
}

/* ---- setup ----------------------------------------------------------------------------- */

static void call_option(lua_State *L, int inst, const char *name, int arg_is_bool, int value)
{
  lua_getfield(L, inst, name);
  if (arg_is_bool) lua_pushboolean(L, value); else lua_pushnumber(L, value);
  lua_call(L, 1, 0);
}

void core_json_init(lua_State *L, int module_index)
{
  int inst;
  module_index = compat_absindex(L, module_index);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "null");
  lua_setfield(L, module_index, "null");
  /* A private instance: options set here never affect other users of cjson. */
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  inst = lua_gettop(L);
  call_option(L, inst, "decode_invalid_numbers", 1, 0);
  call_option(L, inst, "encode_invalid_numbers", 1, 0);
  call_option(L, inst, "encode_number_precision", 0, 14);
  lua_pushlightuserdata(L, (void *)&encode_key);
  lua_getfield(L, inst, "encode");
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, (void *)&decode_key);
  lua_getfield(L, inst, "decode");
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pop(L, 2);
}

static const luaL_Reg json_funcs[] = {
  {"json_encode", l_json_encode},
  {"json_decode", l_json_decode},
  {NULL, NULL}
};

void core_open_json(lua_State *L)
{
  core_json_init(L, -1);
  lua_pushliteral(L, SENTINEL);
  lua_setfield(L, -2, "empty_array");
  compat_setfuncs(L, json_funcs, 0);
}

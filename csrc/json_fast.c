/* json_fast: a decoder for the JSON every CRM reply is made of (no escapes in strings, strict
 * numbers), faster than cjson because strings are pushed straight from the text and short
 * integers are computed without strtod. Anything else (an escape, a control character, a
 * non-strict number, too deep, any syntax error) makes it give up with the stack as it was, and
 * cjson decodes the text instead: results, limits and error messages stay cjson's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

#define FAST_MAX_DEPTH 1000 /* cjson's decode_max_depth */

typedef struct {
  const char *p, *end;
  int depth;
} cursor;

static void skip_ws(cursor *c)
{
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* 1 for the bytes that end the fast path's view of a string: '"', '\\' and control characters. */
static const unsigned char string_stop[256] = {
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

static int fast_string(lua_State *L, cursor *c)
{
  const unsigned char *start = (const unsigned char *)++c->p; /* after the opening quote */
  const unsigned char *p = start, *end = (const unsigned char *)c->end;
  while (end - p >= 4) { /* four at a time: most keys and values are short */
    if (string_stop[p[0]]) goto stop;
    if (string_stop[p[1]]) { p += 1; goto stop; }
    if (string_stop[p[2]]) { p += 2; goto stop; }
    if (string_stop[p[3]]) { p += 3; goto stop; }
    p += 4;
  }
  while (p < end && !string_stop[*p]) p++;
stop:
  if (p >= end || *p != '"') return 0;
  lua_pushlstring(L, (const char *)start, (size_t)(p - start));
  c->p = (const char *)p + 1;
  return 1;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? only. */
static int fast_number(lua_State *L, cursor *c)
{
  const char *p = c->p, *start = p;
  int neg = 0, digits = 0, plain = 1;
  double v = 0;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  if (p >= c->end || !is_digit(*p)) return 0;
  if (*p == '0') {
    p++;
    digits = 1;
    if (p < c->end && is_digit(*p)) return 0;
  } else {
    while (p < c->end && is_digit(*p)) {
      v = v * 10 + (*p - '0');
      p++;
      digits++;
    }
  }
  if (p < c->end && *p == '.') {
    plain = 0;
    p++;
    if (p >= c->end || !is_digit(*p)) return 0;
    while (p < c->end && is_digit(*p)) p++;
  }
  if (p < c->end && (*p == 'e' || *p == 'E')) {
    plain = 0;
    p++;
    if (p < c->end && (*p == '+' || *p == '-')) p++;
    if (p >= c->end || !is_digit(*p)) return 0;
    while (p < c->end && is_digit(*p)) p++;
  }
  if (plain && digits <= 15) { /* exact in a double: the value strtod would give */
    lua_pushnumber(L, neg ? -v : v);
  } else if (plain && (digits > 16 || (digits == 16 && memcmp(p - 16, "9007199254740992", 16) > 0))) {
    return 0; /* an integer beyond 2^53: the cjson path keeps it exact (as a string) */
  } else {
    char tmp[64], *endp;
    size_t n = (size_t)(p - start);
    double d;
    if (n >= sizeof tmp) return 0;
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    d = strtod(tmp, &endp);
    if (endp != tmp + n || d != d || d - d != 0) return 0; /* let cjson judge NaN/inf/odd text */
    lua_pushnumber(L, (lua_Number)d);
  }
  c->p = p;
  return 1;
}

static int fast_literal(lua_State *L, cursor *c, const char *word, size_t n, int kind)
{
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
  c->p += n;
  if (kind == 2) lua_pushlightuserdata(L, NULL); /* cjson.null */
  else lua_pushboolean(L, kind);
  return 1;
}

static int fast_value(lua_State *L, cursor *c);

/* Members and elements wait on the stack (up to PENDING_MAX values) and go into a table made
 * at their final size when the container ends: no table grows by rehashing on the way. Where
 * the stack has no room for that (deep nesting) each one goes in at once. */
#define PENDING_MAX 64

/* Moves the n values above slot t (key, value pairs) into the table at t, made by the first
 * move at the size it needs, in order (a repeated key: the last one counts, as in cjson). */
static void set_pairs(lua_State *L, int t, int n)
{
  int i;
  if (lua_isnil(L, t)) {
    lua_createtable(L, 0, n / 2);
    lua_replace(L, t);
  }
  for (i = 1; i < n; i += 2) {
    lua_pushvalue(L, t + i);
    lua_pushvalue(L, t + i + 1);
    lua_rawset(L, t);
  }
  lua_settop(L, t);
}

/* The same for the n elements above slot t, stored from index *next on. */
static void set_elements(lua_State *L, int t, int n, int *next)
{
  int i;
  if (lua_isnil(L, t)) {
    lua_createtable(L, n, 0);
    lua_replace(L, t);
  }
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, t + i);
    lua_rawseti(L, t, (*next)++);
  }
  lua_settop(L, t);
}

static int fast_object(lua_State *L, cursor *c)
{
  int t, n = 0, room;
  if (++c->depth > FAST_MAX_DEPTH || !lua_checkstack(L, 6)) return 0;
  lua_pushnil(L); /* the table's slot, filled by the first flush */
  t = lua_gettop(L);
  room = lua_checkstack(L, 2 * PENDING_MAX + 6) ? 2 * PENDING_MAX : 2;
  c->p++;
  skip_ws(c);
  if (c->p < c->end && *c->p == '}') {
    c->p++;
    c->depth--;
    lua_newtable(L);
    lua_replace(L, t);
    return 1;
  }
  for (;;) {
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"' || !fast_string(L, c)) return 0;
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':') return 0;
    c->p++;
    if (!fast_value(L, c)) return 0;
    n += 2;
    skip_ws(c);
    if (c->p >= c->end) return 0;
    if (*c->p == ',') {
      c->p++;
      if (n >= room) {
        set_pairs(L, t, n);
        n = 0;
      }
      continue;
    }
    if (*c->p != '}') return 0;
    c->p++;
    c->depth--;
    set_pairs(L, t, n);
    return 1;
  }
}

static int fast_array(lua_State *L, cursor *c)
{
  int t, n = 0, room, next = 1;
  if (++c->depth > FAST_MAX_DEPTH || !lua_checkstack(L, 6)) return 0;
  lua_pushnil(L);
  t = lua_gettop(L);
  room = lua_checkstack(L, PENDING_MAX + 6) ? PENDING_MAX : 1;
  c->p++;
  skip_ws(c);
  if (c->p < c->end && *c->p == ']') {
    c->p++;
    c->depth--;
    lua_newtable(L);
    lua_replace(L, t);
    return 1;
  }
  for (;;) {
    if (!fast_value(L, c)) return 0;
    n++;
    skip_ws(c);
    if (c->p >= c->end) return 0;
    if (*c->p == ',') {
      c->p++;
      if (n >= room) {
        set_elements(L, t, n, &next);
        n = 0;
      }
      continue;
    }
    if (*c->p != ']') return 0;
    c->p++;
    c->depth--;
    set_elements(L, t, n, &next);
    return 1;
  }
}

static int fast_value(lua_State *L, cursor *c)
{
  skip_ws(c);
  if (c->p >= c->end) return 0;
  switch (*c->p) {
  case '{': return fast_object(L, c);
  case '[': return fast_array(L, c);
  case '"': return fast_string(L, c);
  case 't': return fast_literal(L, c, "true", 4, 1);
  case 'f': return fast_literal(L, c, "false", 5, 0);
  case 'n': return fast_literal(L, c, "null", 4, 2);
  default:
    if (*c->p == '-' || is_digit(*c->p)) return fast_number(L, c);
    return 0;
  }
}

int core_json_fast_decode(lua_State *L, const char *s, size_t len)
{
  int top = lua_gettop(L);
  cursor c;
  c.p = s;
  c.end = s + len;
  c.depth = 0;
  if (fast_value(L, &c)) {
    skip_ws(&c);
    if (c.p == c.end) return 1;
  }
  lua_settop(L, top);
  return 0;
}

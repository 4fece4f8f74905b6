/* decode_reply: status + headers + body -> reply table with decoded JSON, request id, retry-after. */
#include <string.h>
#include "core.h"

/* A name the caller gives must be one a lowercase lookup can find. */
static int lowercase_name(const char *s, size_t len)
{
  size_t i;
  if (len == 0 || len >= CORE_HEADER_NAME_MAX) return 0;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return 0;
  }
  return 1;
}

void core_header_names_read(lua_State *L, int idx, core_header_names *names)
{
  int i;
  memset(names, 0, sizeof *names);
  if (idx == 0 || lua_isnoneornil(L, idx)) {
    memcpy(names->name[0], CORE_REQUEST_ID_DEFAULT, sizeof CORE_REQUEST_ID_DEFAULT);
    names->count = 1;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE) luaL_error(L, "request_id_headers must be an array of header names");
  idx = compat_absindex(L, idx);
  for (i = 1;; i++) {
    size_t len;
    const char *s;
    lua_rawgeti(L, idx, i);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      break;
    }
    s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!s || !lowercase_name(s, len)) luaL_error(L, "request_id_headers[%d] must be a lowercase header name", i);
    if (i > CORE_REQUEST_ID_MAX) luaL_error(L, "request_id_headers: at most %d names", CORE_REQUEST_ID_MAX);
    memcpy(names->name[i - 1], s, len + 1);
    lua_pop(L, 1);
  }
  if (i == 1) luaL_error(L, "request_id_headers must name at least one header");
  names->count = i - 1;
}

int core_name_is(const char *s, size_t n, const char *lname)
{
  size_t i;
  for (i = 0; i < n && lname[i]; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != lname[i]) return 0;
  }
  return i == n && !lname[i];
}

/* Registry key of the metatable core.http_reply gives its headers tables: their names are all
 * lowercase, so a header that is not found directly is absent (no scan for other casings). */
const char core_lowercase_headers_key = 'h';

static int known_lowercase(lua_State *L, int h)
{
  int yes;
  if (!lua_getmetatable(L, h)) return 0;
  lua_pushlightuserdata(L, (void *)&core_lowercase_headers_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  yes = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return yes;
}

/* Pushes the string value of header `lname` (lowercase) from the table at h, or returns 0.
 * Lowercase keys (our transports) hit directly; other casings are found by a scan. */
static int push_header(lua_State *L, int h, const char *lname)
{
  lua_getfield(L, h, lname);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    if (known_lowercase(L, h)) return 0;
    lua_pushnil(L);
    while (lua_next(L, h)) {
      size_t klen;
      if (lua_type(L, -2) == LUA_TSTRING) {
        const char *k = lua_tolstring(L, -2, &klen);
        if (core_name_is(k, klen, lname)) {
          lua_remove(L, -2);
          goto found;
        }
      }
      lua_pop(L, 1);
    }
    return 0;
  }
found:
  if (lua_type(L, -1) == LUA_TTABLE) { /* repeated header as an array: the first one counts */
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* Delta-seconds only; an HTTP-date is ignored. */
static int push_retry_after(lua_State *L, const char *s, size_t len)
{
  size_t i = 0, end = len;
  long long v = 0;
  while (i < end && (s[i] == ' ' || s[i] == '\t')) i++;
  while (end > i && (s[end - 1] == ' ' || s[end - 1] == '\t')) end--;
  if (i == end || end - i > 12) return 0;
  for (; i < end; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  compat_pushint(L, v);
  return 1;
}

int core_push_reply(lua_State *L, long status, core_text request_id, core_text retry_after, const char *body,
                    size_t body_len, size_t raw_cap)
{
  int reply, n;
  lua_createtable(L, 0, 8); /* room for the result fields a provider may add (it may return the reply) */
  reply = lua_gettop(L);
  compat_pushint(L, status);
  lua_setfield(L, reply, "status");
  if (request_id.s) {
    lua_pushlstring(L, request_id.s, request_id.len);
    lua_setfield(L, reply, "request_id");
  }
  if (retry_after.s && push_retry_after(L, retry_after.s, retry_after.len)) lua_setfield(L, reply, "retry_after");
  if (body_len == 0) return 1;
  n = core_json_decode_buffer(L, body, body_len, raw_cap);
  if (n == 1) {
    lua_setfield(L, reply, "body");
    return 1;
  }
  /* nil, err on top: give err the reply's context, so a non-JSON error page can still be judged. */
  lua_getfield(L, reply, "status");
  lua_setfield(L, -2, "status");
  lua_getfield(L, reply, "request_id");
  lua_setfield(L, -2, "request_id");
  lua_getfield(L, reply, "retry_after");
  lua_setfield(L, -2, "retry_after");
  lua_remove(L, reply);
  return 2;
}

/* The header's text, borrowed from the headers table (left on the stack), or {NULL, 0}. */
static core_text header_text(lua_State *L, int h, const char *lname)
{
  core_text t = {NULL, 0};
  if (push_header(L, h, lname)) t.s = lua_tolstring(L, -1, &t.len);
  else lua_pushnil(L);
  return t;
}

static int l_decode_reply(lua_State *L)
{
  size_t body_len = 0, raw_cap;
  const char *body = NULL;
  core_text request_id = {NULL, 0}, retry_after;
  int i, n;
  luaL_checktype(L, 1, LUA_TNUMBER);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) body = luaL_checklstring(L, 3, &body_len);
  raw_cap = (size_t)compat_optcount(L, 4, LOYALTY_DEFAULT_RAW_CAP);
  lua_settop(L, 5);

  if (lua_isnil(L, 5)) {
    request_id = header_text(L, 2, CORE_REQUEST_ID_DEFAULT);
  } else {
    /* The caller's names (the provider's), read in place: the first one received wins. */
    luaL_checktype(L, 5, LUA_TTABLE);
    for (i = 1; !request_id.s; i++) {
      lua_settop(L, 5);
      lua_rawgeti(L, 5, i);
      if (lua_isnil(L, -1)) break;
      if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "request_id_headers[%d] must be a string", i);
      request_id = header_text(L, 2, lua_tostring(L, -1));
    }
  }
  retry_after = header_text(L, 2, "retry-after"); /* both texts stay on the stack until the end */
  n = core_push_reply(L, (long)lua_tointeger(L, 1), request_id, retry_after, body, body_len, raw_cap);
  if (n == 1) {
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "headers");
  }
  return n;
}

static const luaL_Reg reply_funcs[] = {
  {"decode_reply", l_decode_reply},
  {NULL, NULL}
};

void core_open_reply(lua_State *L)
{
  compat_setfuncs(L, reply_funcs, 0);
}

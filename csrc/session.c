/* core.session(opts): a reusable libcurl easy handle (keep-alive) as a "loyalty.Session" userdata. */
#include <stdio.h>
#include <string.h>
#include "transfer.h"

#define SESSION_MT "loyalty.Session"

typedef struct {
  transfer t;
  int open;
  long long requests, connects;
} session;

static session *check_open(lua_State *L)
{
  session *s = luaL_checkudata(L, 1, SESSION_MT);
  if (!s->open) luaL_error(L, "loyalty.Session: session is closed");
  return s;
}

static int l_session(lua_State *L)
{
  core_opts o;
  session *s;
  opts_read(L, 1, &o);
  transfer_global_init(L);
  /* Userdata first, metatable attached before the handle exists: __gc always cleans up. */
  s = lua_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_getmetatable(L, SESSION_MT);
  lua_setmetatable(L, -2);
  if (!transfer_init(&s->t, &o)) return core_fail(L, "config", "cannot create a libcurl handle with these options");
  s->open = 1;
  if (o.insecure) fputs("loyalty.core: WARNING: TLS certificate verification is disabled (insecure=true)\n", stderr);
  return 1;
}

static int l_perform(lua_State *L)
{
  session *s = check_open(L);
  outcome out;
  CURLcode code;
  request_check(L, 2);
  if (!transfer_prepare(&s->t, L, 2)) return core_fail(L, "config", s->t.errbuf);
  code = curl_easy_perform(s->t.easy);
  transfer_finish(&s->t, code, &out, 0);
  s->requests++;
  s->connects += out.connects;
  if (outcome_push(L, &out)) return 1;
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* Texts of the reply headers the client reads, borrowed from the transfer's header buffer: the
 * request id (the session's request_id_headers, the first name listed that came wins) and Retry-After. */
static void reply_headers(const transfer *t, core_text *request_id, core_text *retry_after)
{
  int i;
  request_id->s = NULL;
  request_id->len = 0;
  for (i = 0; i < t->request_ids.count && !request_id->s; i++) *request_id = transfer_noted(t, i);
  *retry_after = transfer_noted(t, NOTED_RETRY_AFTER);
}

/* session:exchange(method, base_url, path, query, json, body, header_lines [, raw_cap [, timeout_ms
 * [, connect_timeout_ms]]]): build_request, perform and decode_reply in one call, without the
 * intermediate tables; the timeouts (nil: the session's) bound this exchange only. Returns the
 * reply of decode_reply (no headers field) or nil, err, stage ("build", "transport" or "reply"). */
static int l_exchange(lua_State *L)
{
  session *s = check_open(L);
  transfer_req r;
  core_text base, path = {"", 0}, request_id, retry_after;
  outcome out;
  CURLcode code;
  size_t i, n, raw_cap;
  int query = 0;
  char url[1024];

  lua_settop(L, 11);
  luaL_checktype(L, 2, LUA_TSTRING);
  luaL_checktype(L, 3, LUA_TSTRING);
  r.method = lua_tostring(L, 2);
  if (!core_method_known(r.method)) return luaL_error(L, "exchange: unsupported method '%s'", r.method);
  base.s = lua_tolstring(L, 3, &base.len);
  if (!lua_isnil(L, 4)) {
    luaL_checktype(L, 4, LUA_TSTRING);
    path.s = lua_tolstring(L, 4, &path.len);
  }
  if (!lua_isnil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    query = 5;
  }
  if (!lua_isnil(L, 6) && !lua_isnil(L, 7)) return luaL_error(L, "exchange: give either json or body, not both");
  if (!lua_isnil(L, 7)) luaL_checktype(L, 7, LUA_TSTRING);
  luaL_checktype(L, 8, LUA_TTABLE);
  n = compat_rawlen(L, 8);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 8, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "exchange: header lines must be strings");
    lua_pop(L, 1);
  }
  raw_cap = (size_t)compat_optcount(L, 9, LOYALTY_DEFAULT_RAW_CAP);
  r.timeout_ms = transfer_opt_ms(L, 10, "timeout_ms");
  r.connect_timeout_ms = transfer_opt_ms(L, 11, "connect_timeout_ms");

  r.url = core_build_url(L, base, path, query, url, sizeof url, &r.url_len);
  if (!r.url) goto build_failed;
  r.body = NULL;
  r.body_len = 0;
  if (!lua_isnil(L, 6)) {
    if (core_json_encode_value(L, 6) != 1) goto build_failed;
    r.body = lua_tolstring(L, -1, &r.body_len); /* kept on the stack until the call ends */
  } else if (!lua_isnil(L, 7)) {
    r.body = lua_tolstring(L, 7, &r.body_len);
  }
  r.headers = 8;
  if (!transfer_prepare_req(&s->t, L, &r)) {
    core_fail(L, "config", s->t.errbuf);
    goto build_failed;
  }
  code = curl_easy_perform(s->t.easy);
  transfer_finish(&s->t, code, &out, 0);
  s->requests++;
  s->connects += out.connects;
  if (out.code != CURLE_OK || out.too_large) {
    lua_pushnil(L);
    outcome_push(L, &out);
    lua_pushliteral(L, "transport");
    return 3;
  }
  reply_headers(&s->t, &request_id, &retry_after);
  if (core_push_reply(L, out.status, request_id, retry_after, out.body.data, out.body.len, raw_cap) == 1) return 1;
  lua_pushliteral(L, "reply");
  return 3;
build_failed:
  lua_pushliteral(L, "build");
  return 3;
}

static int l_stats(lua_State *L)
{
  session *s = luaL_checkudata(L, 1, SESSION_MT);
  lua_createtable(L, 0, 2);
  compat_pushint(L, s->requests);
  lua_setfield(L, -2, "requests");
  compat_pushint(L, s->connects);
  lua_setfield(L, -2, "connects");
  return 1;
}

/* close, __gc and __close: idempotent. */
static int l_close(lua_State *L)
{
  session *s = luaL_checkudata(L, 1, SESSION_MT);
  if (s->open || s->t.easy) transfer_cleanup(&s->t);
  s->open = 0;
  return 0;
}

static int l_tostring(lua_State *L)
{
  session *s = luaL_checkudata(L, 1, SESSION_MT);
  lua_pushfstring(L, "loyalty.Session (%s): %p", s->open ? "open" : "closed", (void *)s);
  return 1;
}

static const luaL_Reg session_methods[] = {
  {"perform", l_perform},
  {"exchange", l_exchange},
  {"stats", l_stats},
  {"close", l_close},
  {NULL, NULL}
};

static const luaL_Reg session_meta[] = {
  {"__gc", l_close},
  {"__close", l_close},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

static const luaL_Reg session_funcs[] = {
  {"session", l_session},
  {NULL, NULL}
};

void core_open_session(lua_State *L)
{
  transfer_global_init(L);
  if (luaL_newmetatable(L, SESSION_MT)) {
    compat_setfuncs(L, session_meta, 0);
    lua_newtable(L);
    compat_setfuncs(L, session_methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  compat_setfuncs(L, session_funcs, 0);
}

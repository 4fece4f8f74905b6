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

/* loyalty.core: module entry point. Each concern lives in its own file. */
#include "core.h"

void core_push_error(lua_State *L, const char *kind, const char *message)
{
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
}

int core_fail(lua_State *L, const char *kind, const char *message)
{
  lua_pushnil(L);
  core_push_error(L, kind, message);
  return 2;
}

int luaopen_loyalty_core(lua_State *L);

int luaopen_loyalty_core(lua_State *L)
{
  lua_newtable(L);
  lua_pushliteral(L, LOYALTY_CORE_VERSION);
  lua_setfield(L, -2, "version");
  core_open_auth(L);
  core_open_json(L);
  core_open_request(L);
  core_open_reply(L);
  core_open_http_reply(L);
  core_open_session(L);
  core_open_multi(L);
  core_open_clock(L);
  core_open_outbox_sqlite(L);
  core_open_memcap(L);
  return 1;
}

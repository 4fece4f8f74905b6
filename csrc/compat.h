/* Lua 5.1/LuaJIT vs 5.4 C API shim: the rest of the core uses only these names. */
#ifndef LOYALTY_COMPAT_H
#define LOYALTY_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 502
#define compat_rawlen(L, i) lua_rawlen(L, i)
#define compat_absindex(L, i) lua_absindex(L, i)
#define compat_setfuncs(L, reg, nup) luaL_setfuncs(L, reg, nup)
#define compat_testudata(L, i, name) luaL_testudata(L, i, name)
#else
#define compat_rawlen(L, i) lua_objlen(L, i)
#define compat_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
void compat_setfuncs(lua_State *L, const luaL_Reg *reg, int nup);
void *compat_testudata(lua_State *L, int i, const char *name);
#endif

#if LUA_VERSION_NUM >= 503
#define COMPAT_HAS_INTEGERS 1
#define compat_isinteger(L, i) lua_isinteger(L, i)
#define compat_pushint(L, n) lua_pushinteger(L, (lua_Integer)(n))
#else
#define COMPAT_HAS_INTEGERS 0
#define compat_isinteger(L, i) ((void)(L), (void)(i), 0)
#define compat_pushint(L, n) lua_pushnumber(L, (lua_Number)(n))
#endif

/* An optional non-negative integer argument (programmer error if not a number). */
long long compat_optcount(lua_State *L, int arg, long long dflt);

#endif

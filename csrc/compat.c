#include "compat.h"

#if LUA_VERSION_NUM < 502
void compat_setfuncs(lua_State *L, const luaL_Reg *reg, int nup)
{
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; reg->name != NULL; reg++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, reg->func, nup);
    lua_setfield(L, -(nup + 2), reg->name);
  }
  lua_pop(L, nup);
}

void *compat_testudata(lua_State *L, int i, const char *name)
{
  void *p = lua_touserdata(L, i);
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  lua_getfield(L, LUA_REGISTRYINDEX, name);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}
#endif

long long compat_optcount(lua_State *L, int arg, long long dflt)
{
  lua_Number n;
  if (lua_isnoneornil(L, arg)) return dflt;
  n = luaL_checknumber(L, arg);
  luaL_argcheck(L, n >= 0 && n <= 9007199254740992.0 && n == (lua_Number)(long long)n, arg,
                "non-negative integer expected");
  return (long long)n;
}

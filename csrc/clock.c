/* Time for the Lua layer: a monotonic clock and a plain sleep (backoff outside nginx;
 * inside nginx the Lua layer uses ngx.sleep, which does not block the event loop). */
#include <errno.h>
#include <math.h>
#include <time.h>
#include "core.h"

/* core.now() -> seconds (float) on a monotonic clock. */
static int l_now(lua_State *L)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.sleep(seconds): sleeps, resuming after signals, at most one hour. */
static int l_sleep(lua_State *L)
{
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec req, rem;
  luaL_argcheck(L, s >= 0 && s <= 3600, 1, "seconds must be between 0 and 3600");
  req.tv_sec = (time_t)floor(s);
  req.tv_nsec = (long)((s - floor(s)) * 1e9);
  while (nanosleep(&req, &rem) == -1 && errno == EINTR) req = rem;
  return 0;
}

static const luaL_Reg clock_funcs[] = {
  {"now", l_now},
  {"sleep", l_sleep},
  {NULL, NULL}
};

void core_open_clock(lua_State *L)
{
  compat_setfuncs(L, clock_funcs, 0);
}

/* A cap on the bytes a Lua state allocates while analyst rule code runs (loyalty.rules).
 *
 * The state's allocator is wrapped once (lua_setallocf) by a function that passes every request on to
 * the original allocator. While a cap is active, each request that grows memory adds its growth to a
 * running total; a request that would take the total past the limit returns NULL, which Lua turns into
 * a "not enough memory" error before anything is allocated. Frees and shrinks always succeed.
 * The total counts growth and never subtracts frees, so garbage counts too: the cap bounds the
 * allocation volume of one evaluation, and with it the work of `..`, table.concat, gsub and friends,
 * identically on Lua 5.4 and LuaJIT (neither relies on when the collector runs).
 *
 * One cap per process: the first state that asks gets it (nginx workers and the Lua interpreters have
 * one state each); another state is told no and the Lua layer falls back to its own checks. The wrapper
 * stays installed for the life of the state (a plain pass-through when no cap is active), so its
 * bookkeeping lives in static storage and nothing is left to free. The shared object pins itself in
 * memory when it installs the wrapper: lua_close frees the last blocks after it has closed the C
 * libraries, and those frees go through memcap_alloc. */
#define _GNU_SOURCE  /* dladdr, RTLD_NODELETE */
#include <dlfcn.h>
#include "core.h"

/* After a refusal, this much more may be allocated, so the trusted code that reports the limit
 * (the hook, the error table) can still run; rule code is stopped at its next check. */
#define MEMCAP_RESERVE ((size_t)256 * 1024)
#define MEMCAP_TOTAL 1
#define MEMCAP_BLOCK 2

typedef struct {
  lua_Alloc f;         /* the state's own allocator and its data */
  void *ud;
  lua_State *L;        /* the thread that started the cap (5.4 hooks are per thread) */
  size_t used, limit;  /* bytes of growth since start; the cap */
  size_t max_block;    /* the largest single block rule code may ask for */
  int active, denied, installed;  /* denied: 0, MEMCAP_TOTAL or MEMCAP_BLOCK */
  char where[64];      /* 5.4: the chunk ("=earn.lua") and line of the first refused request */
  int where_line;
} memcap;

static memcap cap;

#if LUA_VERSION_NUM >= 504
/* Records the innermost frame of a chunk loaded by name ("=earn.lua": rule files and fixtures).
 * 5.4 saves the pc before anything that allocates, so the line is exact; lua_getstack and lua_getinfo
 * with "Sl" read the call stack without allocating. (Not done on LuaJIT: compiled code keeps no frames.) */
static void note_where(memcap *m)
{
  lua_Debug ar;
  int level;
  m->where[0] = '\0';
  if (!m->L) return;
  for (level = 0; level < 60 && lua_getstack(m->L, level, &ar); level++) {
    if (lua_getinfo(m->L, "Sl", &ar) && ar.source && ar.source[0] == '=' && ar.currentline > 0) {
      size_t i;
      for (i = 0; ar.source[i + 1] && i + 1 < sizeof m->where; i++) m->where[i] = ar.source[i + 1];
      m->where[i] = '\0';
      m->where_line = ar.currentline;
      return;
    }
  }
}
#endif

static void *memcap_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  memcap *m = (memcap *)ud;
  if (m->active && nsize > 0) {
    size_t old = ptr ? osize : 0;  /* for a new block Lua 5.4 passes the object's type in osize */
    if (nsize > old) {
      size_t grow = nsize - old, limit = m->limit + (m->denied ? MEMCAP_RESERVE : 0);
      int why = nsize > m->max_block ? MEMCAP_BLOCK : (grow > limit || m->used > limit - grow) ? MEMCAP_TOTAL : 0;
      if (why) {
        if (!m->denied) {
          m->denied = why;
#if LUA_VERSION_NUM >= 504
          note_where(m);
          /* 5.4 retries a refused request after a full collection, and a rule could catch the error and
           * try again: make the installed (Lua) hook run at the very next instruction, so the limit is
           * reported there. lua_sethook only stores fields, so it is safe inside an allocation. */
          if (m->L && lua_gethook(m->L) && (lua_gethookmask(m->L) & LUA_MASKCOUNT))
            lua_sethook(m->L, lua_gethook(m->L), lua_gethookmask(m->L), 1);
#endif
        }
        return NULL;
      }
      m->used += grow;
    }
  }
  return m->f(m->ud, ptr, osize, nsize);
}

/* core.memcap_start(limit_bytes, max_block_bytes) -> true when the cap is active for this state, false
 * when another state of the process holds it. Resets the count. */
static int l_memcap_start(lua_State *L)
{
  lua_Number limit = luaL_checknumber(L, 1);
  lua_Number max_block = luaL_checknumber(L, 2);
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  luaL_argcheck(L, limit >= 0 && limit <= 1e15, 1, "limit must be between 0 and 1e15 bytes");
  luaL_argcheck(L, max_block >= 0 && max_block <= 1e15, 2, "max_block must be between 0 and 1e15 bytes");
  if (f != memcap_alloc) {
    if (cap.installed) {
      lua_pushboolean(L, 0);
      return 1;
    }
    Dl_info self;
    /* keep this object mapped until the process exits (see the top of the file) */
    if (!dladdr((void *)memcap_alloc, &self) || !self.dli_fname ||
        !dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) {
      lua_pushboolean(L, 0);
      return 1;
    }
    cap.f = f;
    cap.ud = ud;
    cap.installed = 1;
    lua_setallocf(L, memcap_alloc, &cap);
  }
  cap.L = L;
  cap.limit = (size_t)limit;
  cap.max_block = (size_t)max_block;
  cap.used = 0;
  cap.denied = 0;
  cap.where[0] = '\0';
  cap.active = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* core.memcap_stop() -> bytes grown, refusal (0 none, 1 the limit, 2 one block too large), and where
 * the refused request came from (chunk name, line; Lua 5.4 only). Ends the cap. */
static int l_memcap_stop(lua_State *L)
{
  cap.active = 0;
  cap.L = NULL;
  lua_pushnumber(L, (lua_Number)cap.used);
  lua_pushinteger(L, cap.denied);
  if (!cap.denied || !cap.where[0]) return 2;
  lua_pushstring(L, cap.where);
  lua_pushinteger(L, cap.where_line);
  return 4;
}

/* core.memcap_refused() -> 0, or 1 / 2 as above for the first request refused since the start.
 * Allocates nothing: it is called from count hooks, where LuaJIT must not meet a memory error. */
static int l_memcap_refused(lua_State *L)
{
  lua_pushinteger(L, cap.active ? cap.denied : 0);
  return 1;
}

static const luaL_Reg memcap_funcs[] = {
  {"memcap_start", l_memcap_start},
  {"memcap_stop", l_memcap_stop},
  {"memcap_refused", l_memcap_refused},
  {NULL, NULL}
};

void core_open_memcap(lua_State *L)
{
  compat_setfuncs(L, memcap_funcs, 0);
}

/* gunzip: inflates a gzip-encoded reply body (zlib), with a cap on the inflated size so a
 * small hostile body cannot expand without bound. */
#include <string.h>
#include <zlib.h>
#include "core.h"

int core_gunzip(lua_State *L, const char *s, size_t n, size_t cap)
{
  z_stream z;
  luaL_Buffer b;
  size_t total = 0;
  int rc;
  const char *msg = NULL;
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    lua_pushnil(L);
    lua_pushliteral(L, "gzip: cannot start zlib");
    return 0;
  }
  z.next_in = (Bytef *)(size_t)s; /* zlib's API is not const; it never writes the input */
  z.avail_in = (uInt)n;
  luaL_buffinit(L, &b);
  do {
    char *out = luaL_prepbuffer(&b);
    z.next_out = (Bytef *)out;
    z.avail_out = LUAL_BUFFERSIZE;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      msg = rc == Z_BUF_ERROR ? "gzip: body truncated" : "gzip: corrupt body";
      break;
    }
    luaL_addsize(&b, LUAL_BUFFERSIZE - z.avail_out);
    total += LUAL_BUFFERSIZE - z.avail_out;
    if (total > cap) {
      msg = "gzip: inflated body too large";
      break;
    }
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      msg = "gzip: body truncated";
      break;
    }
  } while (rc != Z_STREAM_END);
  inflateEnd(&z);
  luaL_pushresult(&b);
  if (msg) {
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 0;
  }
  return 1;
}

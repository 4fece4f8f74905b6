/* A Basic header over a digested password: "Basic " .. base64(user .. ":" .. md5_hex(password)), for a
 * provider whose password login takes that shape (it chooses to use it). */
#include <string.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include "core.h"

#define MD5_LEN 16

static const char HEX[] = "0123456789abcdef";

/* Leaves the OpenSSL error queue empty so a failure never leaks into a later call. */
static int md5_fail(lua_State *L)
{
  char msg[160];
  unsigned long code = ERR_get_error();
  if (code != 0) {
    char reason[120];
    ERR_error_string_n(code, reason, sizeof reason);
    snprintf(msg, sizeof msg, "md5 failed: %s", reason);
  } else {
    snprintf(msg, sizeof msg, "md5 failed");
  }
  ERR_clear_error();
  return core_fail(L, "config", msg);
}

static int md5_into_hex(const char *s, size_t len, char hex[2 * MD5_LEN])
{
  unsigned char digest[MD5_LEN];
  unsigned int dlen = 0;
  int i;
  if (!EVP_Digest(s, len, digest, &dlen, EVP_md5(), NULL) || dlen != MD5_LEN) {
    OPENSSL_cleanse(digest, sizeof digest);
    return 0;
  }
  for (i = 0; i < MD5_LEN; i++) {
    hex[2 * i] = HEX[digest[i] >> 4];
    hex[2 * i + 1] = HEX[digest[i] & 15];
  }
  OPENSSL_cleanse(digest, sizeof digest);
  return 1;
}

static int l_md5_hex(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[2 * MD5_LEN];
  if (!md5_into_hex(s, len, hex)) return md5_fail(L);
  lua_pushlstring(L, hex, sizeof hex);
  return 1;
}

static size_t b64_len(size_t n) { return 4 * ((n + 2) / 3); }

static int l_base64(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  unsigned char *out;
  int n;
  luaL_argcheck(L, len <= 0x3fffffff, 1, "string too long");
  /* Scratch as userdata: collected even if a later push raises. */
  out = lua_newuserdata(L, b64_len(len) + 1);
  n = EVP_EncodeBlock(out, (const unsigned char *)s, (int)len);
  lua_pushlstring(L, (const char *)out, (size_t)n);
  return 1;
}

static int l_basic_auth(lua_State *L)
{
  size_t ulen, plen, clen, olen;
  const char *user = luaL_checklstring(L, 1, &ulen);
  const char *password = luaL_checklstring(L, 2, &plen);
  unsigned char *creds, *out;
  luaL_argcheck(L, ulen <= 0x3fffff00, 1, "user too long");
  clen = ulen + 1 + 2 * MD5_LEN;
  olen = 6 + b64_len(clen);
  creds = lua_newuserdata(L, clen + olen + 1);
  out = creds + clen;
  memcpy(creds, user, ulen);
  creds[ulen] = ':';
  if (!md5_into_hex(password, plen, (char *)creds + ulen + 1)) {
    OPENSSL_cleanse(creds, clen);
    return md5_fail(L);
  }
  memcpy(out, "Basic ", 6);
  EVP_EncodeBlock(out + 6, creds, (int)clen);
  lua_pushlstring(L, (const char *)out, olen);
  OPENSSL_cleanse(creds, clen + olen + 1);
  return 1;
}

static const luaL_Reg auth_funcs[] = {
  {"md5_hex", l_md5_hex},
  {"base64", l_base64},
  {"basic_auth", l_basic_auth},
  {NULL, NULL}
};

void core_open_auth(lua_State *L)
{
  compat_setfuncs(L, auth_funcs, 0);
}

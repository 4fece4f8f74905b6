-- Built from the repository root: luarocks make sandbox-rock/lua-loyalty-sandbox-0.1.0-1.rockspec
package = "lua-loyalty-sandbox"
version = "0.1.0-1"
source = {
   -- The maintainer points this at the published repository (the same as lua-loyalty's).
   url = "git+https://github.com/lua-loyalty/lua-loyalty.git",
   tag = "v0.1.0",
}
description = {
   summary = "A local Capillary and CRM.COM imitation for developing and testing lua-loyalty",
   detailed = [[
The sandbox CRM lua-loyalty's tests, demo and benches run against: Capillary v1.1, v2 and OAuth
and CRM.COM Rewards on 127.0.0.1, hosted by a private nginx with its Lua module (the system
nginx is untouched), with test knobs under /sandbox/. `loyalty-sandbox` (or `loyalty sandbox`)
runs it; `require("loyalty.sandbox").start{}` from Lua. It builds its own loyalty.core for
nginx's LuaJIT, whatever Lua the tree is for.
]],
   homepage = "https://github.com/lua-loyalty/lua-loyalty",
   license = "MIT",
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-loyalty = 0.1.0",
   "luasocket >= 3.0",
   "lua-cjson >= 2.1.0",
}
external_dependencies = {
   CURL = { library = "curl" },   -- curl/curl.h: see lua-loyalty's rockspec
   OPENSSL = { header = "openssl/evp.h", library = "crypto" },
   SQLITE3 = { header = "sqlite3.h", library = "sqlite3" },
   ZLIB = { header = "zlib.h", library = "z" },   -- gzip replies on the nginx cosocket transport
   -- nginx's Lua module runs OpenResty's LuaJIT (Debian: libluajit2-5.1-dev).
   LUAJIT = { header = "luajit-2.1/luajit.h" },
}
build = {
   type = "make",
   build_target = "sandbox-lib",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LIBFLAG = "$(LIBFLAG) -L$(CURL_LIBDIR) -L$(OPENSSL_LIBDIR) -L$(SQLITE3_LIBDIR) -L$(ZLIB_LIBDIR)",
      LUAJIT_INCDIR_ROCK = "$(LUAJIT_INCDIR)/luajit-2.1",
      CURL_INCDIR = "$(CURL_INCDIR)",
      OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
      SQLITE3_INCDIR = "$(SQLITE3_INCDIR)",
      ZLIB_INCDIR = "$(ZLIB_INCDIR)",
   },
   install_target = "install-sandbox-rock",
   install_variables = {
      INST_LUADIR = "$(LUADIR)",
      INST_BINDIR = "$(BINDIR)",
      INST_PREFIX = "$(PREFIX)",   -- the seed and the LuaJIT loyalty.core
   },
}

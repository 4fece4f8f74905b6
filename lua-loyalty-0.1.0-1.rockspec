package = "lua-loyalty"
version = "0.1.0-1"
source = {
   -- The maintainer points this at the published repository (and pushes the tag); nothing else
   -- in this file names where the code lives. `luarocks make` builds the checkout it runs in.
   url = "git+https://github.com/lua-loyalty/lua-loyalty.git",
   tag = "v0.1.0",
}
description = {
   summary = "Loyalty CRMs (Capillary, CRM.COM) for Lua and OpenResty storefronts",
   detailed = [[
A C core (libcurl, OpenSSL, SQLite, lua-cjson) and a Lua layer: a client per CRM account with
typed operations, a storefront program, sandboxed analyst rule scripts with their `loyalty rules`
tools, and an outbox for writes the CRM could not take. Runs on Lua 5.2-5.4 and LuaJIT
(OpenResty); PUC Lua 5.1 is refused with a message when `loyalty` loads. The local sandbox CRM is
the separate rock lua-loyalty-sandbox.
]],
   homepage = "https://github.com/lua-loyalty/lua-loyalty",
   license = "MIT",
}
dependencies = {
   -- LuaRocks cannot tell LuaJIT from PUC Lua 5.1 here: `require "loyalty"` refuses PUC 5.1.
   "lua >= 5.1, < 5.5",
   "lua-cjson >= 2.1.0",
   "luafilesystem >= 1.6",
   "argparse >= 0.6",
}
external_dependencies = {
   -- The header is not checked here: Debian keeps curl/curl.h under the multiarch include dir
   -- (/usr/include/x86_64-linux-gnu), which the Makefile finds from CURL_INCDIR.
   CURL = { library = "curl" },
   OPENSSL = { header = "openssl/evp.h", library = "crypto" },
   SQLITE3 = { header = "sqlite3.h", library = "sqlite3" },
   ZLIB = { header = "zlib.h", library = "z" },   -- gzip replies on the nginx cosocket transport
}
build = {
   type = "make",
   build_target = "lib",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LIBFLAG = "$(LIBFLAG) -L$(CURL_LIBDIR) -L$(OPENSSL_LIBDIR) -L$(SQLITE3_LIBDIR) -L$(ZLIB_LIBDIR)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      CURL_INCDIR = "$(CURL_INCDIR)",
      OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
      SQLITE3_INCDIR = "$(SQLITE3_INCDIR)",
      ZLIB_INCDIR = "$(ZLIB_INCDIR)",
   },
   install_target = "install-rock",
   install_variables = {
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
      INST_BINDIR = "$(BINDIR)",
      INST_PREFIX = "$(PREFIX)",   -- examples/rules and settings files, found by `loyalty`
   },
}

package = "lua-loyalty"
version = "0.1.0-1"
source = {
   url = "git+https://example.invalid/lua-loyalty.git", -- replaced when published
   tag = "v0.1.0",
}
description = {
   summary = "Loyalty CRMs (Capillary, CRM.COM) for Lua and OpenResty storefronts",
   detailed = [[
A C core (libcurl, OpenSSL, lua-cjson) and a Lua layer: a client per CRM account with typed
operations, a storefront program, sandboxed analyst rule scripts and a local sandbox server.
]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson >= 2.1.0",
}
external_dependencies = {
   CURL = { library = "curl" },      -- Debian keeps curl.h under a multiarch include dir
   OPENSSL = { header = "openssl/evp.h" },
}
build = {
   type = "make",
   build_target = "lib",
   build_variables = {
      CFLAGS = "$(CFLAGS) -I$(CURL_INCDIR) -I$(OPENSSL_INCDIR)",
      LIBFLAG = "$(LIBFLAG) -L$(CURL_LIBDIR) -L$(OPENSSL_LIBDIR)",
      LUA_INCDIR = "$(LUA_INCDIR)",
   },
   install_target = "install-rock",
   install_variables = {
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
      INST_BINDIR = "$(BINDIR)",
   },
}

--- lua-loyalty: loyalty CRMs for Lua and OpenResty storefronts.
-- local loyalty = require "loyalty"
-- local client = assert(loyalty.client { base_url = ..., username = ..., password = ... })
-- PUC Lua 5.1 lacks what the rules sandbox and the core rely on (load with an env, goto-free
-- integer maths): LuaRocks cannot refuse it for us, as it cannot tell it from LuaJIT.
if _VERSION == "Lua 5.1" and type(rawget(_G, "jit")) ~= "table" then
  error("lua-loyalty runs on LuaJIT or Lua 5.2-5.4, not PUC Lua 5.1: run it with luajit", 2)
end

local _M = {
  VERSION = require("loyalty.paths").VERSION,
  errors = require "loyalty.errors",
}

--- A low-level client for one CRM account (see loyalty.client).
function _M.client(opts)
  return require("loyalty.client").new(opts)
end

--- The storefront program from a settings table or a store.conf.lua path (see loyalty.program).
function _M.program(settings)
  return require("loyalty.program").new(settings)
end

return _M

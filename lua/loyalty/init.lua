--- lua-loyalty: loyalty CRMs for Lua and OpenResty storefronts.
-- local loyalty = require "loyalty"
-- local client = assert(loyalty.client { base_url = ..., username = ..., password = ... })
local _M = {
  VERSION = "0.1.0",
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

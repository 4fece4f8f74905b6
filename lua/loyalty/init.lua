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

return _M

-- The transport loyalty.client picks inside nginx: the one chosen with
-- require("loyalty.ngx").configure{transport = ...} ("socket" by default). Where
-- ngx.location.capture is not allowed (timers) the proxy choice falls back to the cosocket
-- transport per call.
local ngx_conf = require "loyalty.ngx"

local _M = {}

local Transport = {}
Transport.__index = Transport

local function socket_transport(opts)
  return require("loyalty.ngx.socket").new(opts)
end

--- new(client_opts) -> transport
function _M.new(opts)
  opts = opts or {}
  local kind = ngx_conf.settings().transport
  if kind == "socket" then return socket_transport(opts) end
  if kind == "thread" then return require("loyalty.ngx.thread").new(opts) end
  return setmetatable({ opts = opts, proxy = require("loyalty.ngx.proxy").new(opts) }, Transport)
end

function Transport:send(req)
  if ngx_conf.capture_allowed() then return self.proxy:send(req) end
  if not self.socket then self.socket = socket_transport(self.opts) end
  return self.socket:send(req)
end

function Transport.close() end

return _M

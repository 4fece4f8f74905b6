-- The transport loyalty.client picks inside nginx: the one chosen with
-- require("loyalty.ngx").configure{transport = ...}. Where ngx.location.capture is not allowed
-- (timers, init_worker) the proxy choice falls back to the worker-thread transport per call.
local ngx_conf = require "loyalty.ngx"

local _M = {}

local Transport = {}
Transport.__index = Transport

--- new(client_opts) -> transport
function _M.new(opts)
  local kind = ngx_conf.settings().transport
  local self = setmetatable({ opts = opts or {}, kind = kind }, Transport)
  if kind == "thread" then
    self.thread = require("loyalty.transport.ngx_thread").new(self.opts)
  else
    self.proxy = require("loyalty.transport.ngx_proxy").new(self.opts)
  end
  return self
end

function Transport:send(req)
  if self.proxy and ngx_conf.capture_allowed() then return self.proxy:send(req) end
  if not self.thread then self.thread = require("loyalty.transport.ngx_thread").new(self.opts) end
  return self.thread:send(req)
end

function Transport.close() end

return _M

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

--- reqs sent by transport:send on up to max_in_flight nginx light threads (ngx.thread), this one
-- among them -> out[i] = res | { err = err }. Where no light thread can be spawned the rest go
-- one after another from this thread. The nginx transports' send_many.
function _M.send_concurrently(transport, reqs, max_in_flight)
  local n, out, next_i = #reqs, {}, 1
  local function worker()
    while next_i <= n do
      local i = next_i
      next_i = i + 1
      local res, err = transport:send(reqs[i])
      out[i] = res or { err = err }
    end
  end
  local threads = {}
  local spawn = ngx.thread.spawn
  for _ = 2, math.min(max_in_flight or 1, n) do
    local ok, thread = pcall(spawn, worker)
    if not ok then break end -- this phase has no light threads
    threads[#threads + 1] = thread
  end
  worker()
  for t, thread in ipairs(threads) do
    local ok, err = ngx.thread.wait(thread)
    if not ok then
      for k = t + 1, #threads do ngx.thread.kill(threads[k]) end
      error(err, 0) -- a raise in send: a programmer error, as in the calling thread
    end
  end
  return out
end

function Transport:send_many(reqs, max_in_flight)
  return _M.send_concurrently(self, reqs, max_in_flight)
end

function Transport.close() end

return _M

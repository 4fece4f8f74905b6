-- An outbox of one backend ("sqlite" or "redis") for the specs that hold for both: new(backend,
-- name, clock) returns ctx; ctx.use() starts what the backend needs (a temp dir, a Redis server)
-- in the describe block it is called from and stops it after; ctx.open() opens a fresh outbox.
local outbox = require "loyalty.outbox"
local proc = require "outbox.helpers.proc"
local redis_helper = require "outbox.helpers.redis"

local _M = {}

function _M.new(backend, name, clock)
  local ctx, dir, server, n = {}, nil, nil, 0
  function ctx.use()
    local busted = require "busted" -- a required module sees busted's API only through it
    busted.lazy_setup(function()
      dir = proc.tmpdir()
      if backend == "redis" then server = redis_helper.start() end
    end)
    busted.lazy_teardown(function()
      if server then server.stop() end
      proc.rmdir(dir)
    end)
  end
  function ctx.open()
    n = n + 1
    if backend == "sqlite" then
      return assert(outbox.open { backend = "sqlite", path = dir .. "/" .. name .. n .. ".db", clock = clock })
    end
    return assert(outbox.open { backend = "redis", host = server.host, port = server.port,
                                key = "spec:" .. name .. n, clock = clock })
  end
  return ctx
end

return _M

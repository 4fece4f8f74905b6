-- Where OAuth tokens are cached. `memory()` serves one process; nginx workers share one
-- through loyalty.ngx.token_store (a lua_shared_dict). Interface:
--   store:get(key) -> token, expires_at | nil
--   store:set(key, token, expires_at, ttl)
--   store:lock(key [, wait_s]) -> release() | nil, err   (one refresh at a time; wait at most wait_s)
-- A failing store answers `nil, err` with a loyalty.errors table (timeout, storage or config).
local env = require "loyalty.env"

local _M = {}

local Memory = {}
Memory.__index = Memory

function Memory:get(key)
  local e = self.entries[key]
  if e then return e[1], e[2] end
end

function Memory:set(key, token, expires_at)
  self.entries[key] = { token, expires_at }
end

-- A single Lua state runs one call at a time, so the refresh is already single-flight.
local function noop() end
function Memory.lock()
  return noop
end

function Memory:delete(key)
  self.entries[key] = nil
end

local shared
--- The process-wide memory store (clients of one account share their token).
function _M.memory()
  if not shared then shared = setmetatable({ entries = {} }, Memory) end
  return shared
end

--- The default: inside nginx the workers' shared dict (when configured, so one worker
-- refreshes and all share), else this process's memory.
function _M.default()
  if env.in_nginx then
    local ok, ngx_loyalty = pcall(require, "loyalty.ngx")
    local store = ok and ngx_loyalty.token_store()
    if store then return store end
  end
  return _M.memory()
end

--- A private memory store (tests, or clients that must not share).
function _M.private()
  return setmetatable({ entries = {} }, Memory)
end

return _M

-- OAuth tokens in a lua_shared_dict: every worker reads the same token, and a lock in the same
-- dict lets one worker refresh while the others wait (ngx.sleep, never blocking the loop).
-- Interface as loyalty.token_store: get(key), set(key, token, expires_at, ttl), lock(key).
local timeouts = require "loyalty.timeouts"
local errors = require "loyalty.errors"
local schema = require "loyalty.schema"

local _M = {}

local Store = {}
Store.__index = Store

local OPTIONS = {
  lock_timeout = { type = "number", above = 0, default = timeouts.token_lock_wait_s, doc = "seconds" },
  lock_ttl = { type = "number", above = 0, default = timeouts.token_lock_ttl_s, doc = "seconds" },
}

local LOCK_PREFIX = "lock\0"

local function dict_error(name, err)
  return errors.new { kind = "storage", retryable = true, message = "shared dict '" .. name .. "': " .. tostring(err) }
end
local lock_serial = 0

--- new(dict_name [, {lock_timeout = seconds, lock_ttl = seconds}]) -> store | nil, err (kind config)
function _M.new(dict_name, opts)
  if type(dict_name) ~= "string" then error("loyalty.ngx.token_store: dict name expected", 2) end
  opts = schema.assert(OPTIONS, opts or {}, "loyalty.ngx.token_store", 2)
  local dict = ngx.shared[dict_name]
  if not dict then
    return nil, errors.config("lua_shared_dict '" .. dict_name .. "' is not defined in nginx.conf", "token_dict")
  end
  return setmetatable({
    dict = dict, name = dict_name,
    lock_timeout = opts.lock_timeout,
    lock_ttl = opts.lock_ttl,
  }, Store)
end

-- Stored as "<expires_at> <token>" so both travel in one atomic dict value.
function Store:get(key)
  local v = self.dict:get(key)
  if type(v) ~= "string" then return nil end
  local exp, token = v:match("^(%d+) (.*)$")
  if not exp then return nil end
  return token, tonumber(exp)
end

function Store:set(key, token, expires_at, ttl)
  expires_at = math.floor(expires_at)
  local keep = ttl or (expires_at - ngx.time())
  if keep <= 0 then keep = 1 end
  local ok, err = self.dict:set(key, expires_at .. " " .. token, keep)
  if not ok then return nil, dict_error(self.name, err) end
  return true
end

function Store:delete(key)
  self.dict:delete(key)
end

--- lock(key [, wait_s]) -> release() | nil, err (kind timeout, or storage). Spins on dict:add with
-- growing ngx.sleep steps until the holder releases (or its lock expires after lock_ttl), giving
-- up after lock_timeout or wait_s (what is left of the caller's deadline), whichever is shorter.
function Store:lock(key, wait_s)
  local limit = self.lock_timeout
  if type(wait_s) == "number" and wait_s < limit then limit = math.max(wait_s, 0) end
  local dict, lock_key = self.dict, LOCK_PREFIX .. key
  lock_serial = lock_serial + 1
  local owner = ngx.worker.pid() .. ":" .. lock_serial
  local waited, step = 0, 0.002
  while true do
    local ok, err = dict:add(lock_key, owner, self.lock_ttl)
    if ok then break end
    if err ~= "exists" then return nil, dict_error(self.name, err) end
    if waited >= limit then
      return nil, errors.new { kind = "timeout", retryable = true,
        message = "timed out after " .. waited .. "s waiting for another worker's token refresh" }
    end
    ngx.sleep(step)
    waited = waited + step
    step = math.min(step * 2, 0.05)
  end
  local released = false
  return function()
    if released then return end
    released = true
    -- Only drop our own lock: if it expired, another worker may hold it now.
    if dict:get(lock_key) == owner then dict:delete(lock_key) end
  end
end

return _M

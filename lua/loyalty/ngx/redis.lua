-- The Redis connection inside nginx: lua-resty-redis (`resty.redis` as OpenResty ships it,
-- else `nginx.redis` from Debian's lua-nginx-redis) with nginx's connection pool, behind the
-- same small interface as loyalty.outbox.resp: connect{...} -> conn; conn:call(cmd, ...),
-- conn:release() (back to the pool), conn:close(). A nil bulk reply is false, as in resp.
local timeouts = require "loyalty.timeouts"

local _M = {}

local ngx = ngx -- luacheck: ignore ngx (only loaded inside nginx)

local function library()
  local ok, mod = pcall(require, "resty.redis")
  if ok then return mod, "resty.redis" end
  local ok2, mod2 = pcall(require, "nginx.redis")
  if ok2 then return mod2, "nginx.redis" end
  return nil, "lua-resty-redis is not installed (OpenResty: resty.redis; Debian: lua-nginx-redis)"
end

--- Which module is used ("resty.redis" | "nginx.redis"), or nil, message.
function _M.available()
  local mod, name = library()
  if not mod then return nil, name end
  return name
end

local POOL_IDLE_MS, POOL_SIZE = timeouts.keepalive_ms, 16

local Conn = {}
Conn.__index = Conn

local resp = require "loyalty.outbox.resp"
local redact, fail = resp.redact, resp.fail -- plain text, never a pattern; a storage error

-- resty.redis gives ngx.null for nil replies (also inside arrays); resp gives false.
local function plain(v)
  if v == ngx.null then return false end
  if type(v) == "table" then
    for i = 1, #v do v[i] = plain(v[i]) end
  end
  return v
end

--- connect{host, port, timeout_ms, password} -> conn | nil, err (kind storage)
function _M.connect(opts)
  local redis, lerr = library()
  if not redis then return fail(lerr) end
  local red = redis:new()
  red:set_timeout(opts.timeout_ms or timeouts.redis_ms)
  local host, port = opts.host or "127.0.0.1", opts.port or 6379
  -- one pool per server and password: a pooled connection is already signed in as this user
  local pool = "loyalty-redis:" .. host .. ":" .. port .. ":" .. (opts.password and ngx.md5(opts.password) or "")
  local ok, err = red:connect(host, port, { pool = pool, pool_size = POOL_SIZE })
  if not ok then return fail("redis connect: " .. tostring(err)) end
  if opts.password and (red:get_reused_times() or 0) == 0 then
    local r, aerr = red:auth(opts.password)
    if not r then
      red:close()
      return fail("redis auth failed: " .. redact(aerr, opts.password))
    end
  end
  return setmetatable({ red = red, sock = true, pooled = true, password = opts.password }, Conn)
end

--- call(cmd, ...) -> reply | nil, err (kind storage)
function Conn:call(cmd, ...)
  if not self.red then return fail("redis connection closed") end
  local method = self.red[cmd:lower()]
  if not method then return fail("redis command " .. tostring(cmd) .. " is not known to lua-resty-redis") end
  local r, err = method(self.red, ...)
  if r == nil then
    -- a reply from Redis ("ERR ...", "NOSCRIPT ...") leaves the connection usable; anything
    -- else (timeout, closed) does not
    if not (type(err) == "string" and err:match("^[A-Z]+ ")) then self:close() end
    return fail(redact(err, self.password))
  end
  return plain(r)
end

function Conn:close()
  if self.red then
    self.red:close()
    self.red, self.sock = nil, nil
  end
end

function Conn:release()
  if not self.red then return end
  local ok = self.red:set_keepalive(POOL_IDLE_MS, POOL_SIZE)
  if not ok then self.red:close() end
  self.red, self.sock = nil, nil
end

return _M

-- A tiny Redis client (RESP2 over lua-socket) for use outside nginx: commands as argument lists,
-- replies as Lua values. Only what the outbox needs. Inside nginx the outbox uses
-- lua-resty-redis instead (loyalty.ngx.redis); this one still speaks cosockets there if
-- called directly.
local env = require "loyalty.env"
local errors = require "loyalty.errors"
local util = require "loyalty.util"
local timeouts = require "loyalty.timeouts"

local _M = {}

local Conn = {}
Conn.__index = Conn

-- Every failure is the outbox's storage error (retryable: the store may be back next time).
local function fail(message)
  return nil, errors.new { kind = "storage", retryable = true, message = message }
end
_M.fail = fail

-- Replaces every occurrence of secret in s as plain text (a password is never a pattern).
function _M.redact(s, secret)
  s = tostring(s)
  if not secret or secret == "" then return s end
  return util.replace_plain(s, secret, "[REDACTED]")
end

-- Inside nginx a cosocket belongs to the request or timer that made it, so connections are not
-- kept by their owner but returned to nginx's pool after each use (release).
local POOL_IDLE_MS, POOL_SIZE = timeouts.keepalive_ms, 16

local function tcp()
  local cosocket = env.tcp()
  if cosocket then return cosocket, 1, true end -- timeouts in milliseconds, pooled
  return require("socket").tcp(), 1000, false -- timeouts in seconds
end

--- connect{host, port, timeout_ms, password} -> conn | nil, err (kind storage). conn.pooled: call
-- conn:release() when done (inside nginx); otherwise keep it.
function _M.connect(opts)
  local sock, per_second, pooled = tcp()
  sock:settimeout((opts.timeout_ms or timeouts.redis_ms) / per_second)
  local ok, err = sock:connect(opts.host or "127.0.0.1", opts.port or 6379)
  if not ok then return fail("redis connect: " .. tostring(err)) end
  local c = setmetatable({ sock = sock, pooled = pooled }, Conn)
  if opts.password and not (pooled and (sock:getreusedtimes() or 0) > 0) then -- a pooled one is signed in
    local r, aerr = c:call("AUTH", opts.password)
    if not r then
      c:close()
      return fail("redis auth failed: " .. _M.redact(util.message_of(aerr), opts.password))
    end
  end
  return c
end

local function encode(args)
  local parts = { "*" .. #args .. "\r\n" }
  for i = 1, #args do
    local s = tostring(args[i])
    parts[#parts + 1] = "$" .. #s .. "\r\n" .. s .. "\r\n"
  end
  return table.concat(parts)
end

local function read_reply(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, "redis read: " .. tostring(err), true end
  local t, rest = line:sub(1, 1), line:sub(2)
  if t == "+" then return rest end
  if t == "-" then return nil, rest end
  if t == ":" then return tonumber(rest) end
  if t == "$" then
    local n = tonumber(rest)
    if n < 0 then return false end
    local data, derr = sock:receive(n + 2)
    if not data then return nil, "redis read: " .. tostring(derr), true end
    return data:sub(1, n)
  end
  if t == "*" then
    local n = tonumber(rest)
    if n < 0 then return false end
    local out = {}
    for i = 1, n do
      local v, verr, broken = read_reply(sock)
      if v == nil then
        if broken then return nil, verr, true end
        v = { err = verr }
      end
      out[i] = v
    end
    return out
  end
  return nil, "redis protocol error", true
end

--- call(cmd, ...) -> reply | nil, err (kind storage; a Redis error reply is its message). A nil
-- bulk reply is false.
function Conn:call(...)
  if not self.sock then return fail("redis connection closed") end
  local ok, err = self.sock:send(encode({ ... }))
  if not ok then
    self:close()
    return fail("redis write: " .. tostring(err))
  end
  local v, rerr, broken = read_reply(self.sock)
  if broken then self:close() end
  if v == nil then return fail(rerr) end
  return v
end

function Conn:close()
  if self.sock then
    self.sock:close()
    self.sock = nil
  end
end

-- Hands a pooled connection back to nginx (closing it if it can't be reused); a no-op otherwise.
function Conn:release()
  if not (self.pooled and self.sock) then return end
  if not self.sock:setkeepalive(POOL_IDLE_MS, POOL_SIZE) then self.sock:close() end
  self.sock = nil
end

return _M

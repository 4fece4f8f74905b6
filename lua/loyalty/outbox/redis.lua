-- The Redis outbox, shared by a fleet of storefront hosts. Each entry is a hash; a sorted set
-- keeps pending ids in order. A claim (a server-side script, so atomic across hosts) takes each
-- customer's oldest pending entry and leases it: a drainer that dies leaves its claims to expire
-- and return to the line, and a customer with a leased entry is skipped, so no two drainers ever
-- hold writes for one customer at once.
-- Durability is Redis's: run it with appendonly yes and appendfsync always for "durable on put".
local errors = require "loyalty.errors"
local base = require "loyalty.outbox"
local resp = require "loyalty.outbox.resp"
local env = require "loyalty.env"

-- Inside nginx (where cosockets work) lua-resty-redis and nginx's pool; elsewhere the small client.
local function client()
  if env.can_yield() then
    local resty = require "loyalty.ngx.redis"
    if resty.available() then return resty end
  end
  return resp
end

local _M = {}

local Outbox = {}
Outbox.__index = Outbox

local PUT = [[
local p = ARGV[1]
if ARGV[5] ~= '' then
  local existing = redis.call('GET', p .. ':dd:' .. ARGV[5])
  if existing then return { tonumber(existing), 1 } end
end
local id = redis.call('INCR', p .. ':seq')
redis.call('HSET', p .. ':e:' .. id, 'id', id, 'kind', ARGV[2], 'customer_key', ARGV[3], 'till', ARGV[4],
  'dedupe_key', ARGV[5], 'payload', ARGV[6], 'state', 'pending', 'attempts', 0, 'next_at', ARGV[8],
  'lease_until', 0, 'last_error', '', 'created_at', ARGV[7], 'updated_at', ARGV[7])
redis.call('ZADD', p .. ':pending', id, id)
if ARGV[5] ~= '' then redis.call('SET', p .. ':dd:' .. ARGV[5], id) end
return { id, 0 }
]]

local CLAIM = [[
local p, now, limit, lease_until = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local ids = redis.call('ZRANGE', p .. ':pending', 0, -1)
local seen, out = {}, {}
for _, id in ipairs(ids) do
  local k = p .. ':e:' .. id
  local e = redis.call('HMGET', k, 'customer_key', 'next_at', 'lease_until')
  local ck = e[1]
  if ck and not seen[ck] then
    seen[ck] = true
    if tonumber(e[2]) <= now and tonumber(e[3]) <= now then
      redis.call('HSET', k, 'lease_until', lease_until, 'updated_at', ARGV[2])
      redis.call('HINCRBY', k, 'attempts', 1)
      out[#out + 1] = id
      if #out >= limit then break end
    end
  end
end
return out
]]

-- ARGV: prefix, id, new state, last_error (or ''), next_at (or ''), now, keep_error flag
local SETTLE = [[
local p, id, state = ARGV[1], ARGV[2], ARGV[3]
local k = p .. ':e:' .. id
if redis.call('HGET', k, 'state') ~= 'pending' then return 0 end
redis.call('HSET', k, 'lease_until', 0, 'updated_at', ARGV[6])
if ARGV[7] == '1' then redis.call('HSET', k, 'last_error', ARGV[4]) end
if state == 'delivered' then
  redis.call('ZREM', p .. ':pending', id)
  redis.call('HSET', k, 'state', 'delivered')
  redis.call('INCR', p .. ':delivered')
  redis.call('EXPIRE', k, 604800)
elseif state == 'dead' then
  redis.call('ZREM', p .. ':pending', id)
  redis.call('HSET', k, 'state', 'dead')
  redis.call('ZADD', p .. ':dead', id, id)
else
  redis.call('HSET', k, 'next_at', ARGV[5])
end
return 1
]]

local RETRY = [[
local p, id, now = ARGV[1], ARGV[2], ARGV[3]
local k = p .. ':e:' .. id
local state = redis.call('HGET', k, 'state')
if state ~= 'dead' and state ~= 'pending' then return 0 end
redis.call('ZREM', p .. ':dead', id)
redis.call('ZADD', p .. ':pending', id, id)
redis.call('HSET', k, 'state', 'pending', 'attempts', 0, 'next_at', now, 'lease_until', 0, 'updated_at', now)
return 1
]]

local function num(v) return string.format("%.6f", v) end

-- The connection's errors are storage errors already; anything else becomes one.
local function fail(err)
  if errors.is_error(err) then return nil, err end
  return nil, base.storage_error(tostring(err))
end

--- open{host, port, key, timeout_ms, password, clock} -> outbox | nil, err
function _M.open(opts)
  local checked, cerr = base.check_options(opts)
  if not checked then return nil, cerr end
  local key = opts.key or "loyalty:outbox"
  if type(key) ~= "string" or key == "" or key:find("[%s%z]") then
    return nil, errors.config("outbox.key must be a non-empty string without spaces", "outbox.key")
  end
  local conn, err = client().connect { host = opts.host or "127.0.0.1", port = opts.port or 6379,
                                       timeout_ms = opts.timeout_ms, password = opts.password }
  if not conn then return fail(err) end
  local self = setmetatable({ conn = conn, key = key, clock = opts.clock or base.clock, backend = "redis",
                              opts = opts }, Outbox)
  self:release()
  return self
end

-- Inside nginx the connection goes back to the pool between calls: the next call may come from
-- another request or timer, which could not use this one's cosocket.
function Outbox:release()
  if self.conn and self.conn.pooled then
    self.conn:release()
    self.conn = nil
  end
end

function Outbox:call(...)
  if not self.conn then
    local conn, err = client().connect { host = self.opts.host or "127.0.0.1", port = self.opts.port or 6379,
                                         timeout_ms = self.opts.timeout_ms, password = self.opts.password }
    if not conn then return fail(err) end
    self.conn = conn
  end
  local r, err = self.conn:call(...)
  if r == nil then
    if not self.conn.sock then self.conn = nil end
    self:release()
    return fail(err)
  end
  self:release()
  return r
end

function Outbox:put(entry)
  local e, perr = base.prepare(entry)
  if not e then return nil, perr end
  local r, err = self:call("EVAL", PUT, 0, self.key, e.kind, e.customer_key, e.till or "", e.dedupe_key or "",
                           e.payload_json, num(self.clock()), num(e.next_at or self.clock()))
  if not r then return nil, err end
  return tonumber(r[1]), r[2] == 1
end

local function blank(v) if v == "" or v == false then return nil end return v end

local function entry_of(flat)
  if type(flat) ~= "table" or #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return {
    id = tonumber(h.id), kind = h.kind, customer_key = h.customer_key, till = blank(h.till),
    dedupe_key = blank(h.dedupe_key), payload = base.decode_payload(h.payload), state = h.state,
    attempts = tonumber(h.attempts), next_at = tonumber(h.next_at), lease_until = tonumber(h.lease_until),
    last_error = blank(h.last_error), created_at = tonumber(h.created_at), updated_at = tonumber(h.updated_at),
  }
end

function Outbox:get(id)
  local flat, err = self:call("HGETALL", self.key .. ":e:" .. tostring(id))
  if not flat then return nil, err end
  return entry_of(flat)
end

--- The entry queued under dedupe_key, or nil.
function Outbox:find(dedupe_key)
  local id, err = self:call("GET", self.key .. ":dd:" .. dedupe_key)
  if id == nil then return nil, err end
  if id == false or id == "" then return nil end
  return self:get(id)
end

function Outbox:due(now, limit, lease_seconds)
  now = now or self.clock()
  local ids, err = self:call("EVAL", CLAIM, 0, self.key, num(now), limit or 100, num(now + (lease_seconds or 60)))
  if not ids then return nil, err end
  local out = {}
  for _, id in ipairs(ids) do
    local e, gerr = self:get(id)
    if e == nil and gerr then return nil, gerr end
    if e then out[#out + 1] = e end
  end
  return out
end

local function settle(self, id, state, err, next_at)
  local r, cerr = self:call("EVAL", SETTLE, 0, self.key, tostring(id), state, err and base.error_text(err) or "",
                            next_at and num(next_at) or "", num(self.clock()), err and "1" or "0")
  if not r then return nil, cerr end
  return r == 1
end

function Outbox:mark_delivered(id) return settle(self, id, "delivered") end
function Outbox:mark_failed(id, err, next_at) return settle(self, id, "pending", err, next_at) end
function Outbox:mark_dead(id, err) return settle(self, id, "dead", err) end

function Outbox:retry(id)
  local r, err = self:call("EVAL", RETRY, 0, self.key, tostring(id), num(self.clock()))
  if not r then return nil, err end
  return r == 1
end

local function entries(self, ids)
  local out = {}
  for _, id in ipairs(ids) do
    local e, err = self:get(id)
    if e == nil and err then return nil, err end
    out[#out + 1] = e
  end
  return out
end

--- Pending and dead entries (delivered ones expire after a week and are not listed).
function Outbox:list(state)
  local out = {}
  for _, s in ipairs { "pending", "dead" } do
    if not state or state == s then
      local ids, err = self:call("ZRANGE", self.key .. ":" .. s, 0, -1)
      if not ids then return nil, err end
      local es
      es, err = entries(self, ids)
      if not es then return nil, err end
      for _, e in ipairs(es) do out[#out + 1] = e end
    end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

function Outbox:status()
  local pending, err = self:call("ZCARD", self.key .. ":pending")
  if not pending then return nil, err end
  local dead
  dead, err = self:call("ZCARD", self.key .. ":dead")
  if not dead then return nil, err end
  local delivered
  delivered, err = self:call("GET", self.key .. ":delivered")
  if delivered == nil then return nil, err end
  local oldest_ids
  oldest_ids, err = self:call("ZRANGE", self.key .. ":pending", 0, 0)
  if not oldest_ids then return nil, err end
  local dead_ids
  dead_ids, err = self:call("ZREVRANGE", self.key .. ":dead", 0, 49)
  if not dead_ids then return nil, err end
  local oldest = oldest_ids[1] and self:get(oldest_ids[1]) or nil
  local dead_entries
  dead_entries, err = entries(self, dead_ids)
  if not dead_entries then return nil, err end
  return { backend = "redis", counts = { pending = pending, dead = dead, delivered = tonumber(delivered) or 0 },
           oldest_pending = oldest, dead = dead_entries }
end

function Outbox:close()
  if self.conn then
    self.conn:close()
    self.conn = nil
  end
end

Outbox.__close = Outbox.close
Outbox.__gc = Outbox.close

return _M

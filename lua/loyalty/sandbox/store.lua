-- Shared by both CRMs: the sandbox state in lua_shared_dicts (seen by every nginx worker), the
-- request counters, the latency knob and the seed. Entities are JSON strings under typed keys, each
-- provider's under its own (capillary/store.lua, crmcom/store.lua); nothing here knows their shapes.
local json = require("loyalty.sandbox.json")

local _M = {}

local STATE, COUNTERS = "sandbox_state", "sandbox_counters"
_M.STATE_DICT, _M.COUNTERS_DICT = STATE, COUNTERS

-- Set in init_by_lua (master) and inherited by every worker, so /sandbox/reset can reload it.
local seed_raw, base_latency = nil, 0

local function dict() return ngx.shared[STATE] end
local function counters() return ngx.shared[COUNTERS] end

function _M.get_json(key)
  local s = dict():get(key)
  if s == nil then return nil end
  return json.decode(s)
end

function _M.set_json(key, value, ttl)
  local ok, err = dict():set(key, json.encode(value), ttl or 0)
  if not ok then error("sandbox state full: " .. tostring(err)) end
end

function _M.get(key) return dict():get(key) end
function _M.set(key, value, ttl) return dict():set(key, value, ttl or 0) end
function _M.add(key, value, ttl) return dict():add(key, value, ttl or 0) end
function _M.delete(key) return dict():delete(key) end
function _M.incr(key, by, ttl) return dict():incr(key, by or 1, 0, ttl) end

function _M.next_seq(name) return (dict():incr("seq:" .. name, 1, 0)) end
function _M.seq(name) return dict():get("seq:" .. name) or 0 end

-- Every record numbered by sequence `seq`, read by get(n) (records that are gone are skipped), in order.
function _M.each_numbered(seq, get)
  local out = json.array {}
  for n = 1, _M.seq(seq) do
    local r = get(n)
    if r then out[#out + 1] = r end
  end
  return out
end

function _M.count_request(path)
  counters():incr(path, 1, 0)
end

function _M.request_counts()
  local c = counters()
  local out = {}
  for _, k in ipairs(c:get_keys(0)) do out[k] = c:get(k) end
  return out
end

-- Latency knob ---------------------------------------------------------------------------------

function _M.latency_ms()
  return dict():get("latency_ms") or 0
end

function _M.set_latency(ms)
  dict():set("latency_ms", ms)
end

-- Seed -----------------------------------------------------------------------------------------

--- Empties both dicts and restores the starting latency; returns the decoded seed for the
-- providers to load their parts from.
function _M.reset()
  local seed = assert(json.decode(seed_raw), "sandbox: seed is not valid JSON")
  dict():flush_all()
  dict():flush_expired()
  counters():flush_all()
  counters():flush_expired()
  dict():set("latency_ms", base_latency)
  return seed
end

--- Called from init_by_lua with the seed JSON text and the starting latency.
function _M.init(raw, latency_ms)
  seed_raw = raw
  base_latency = latency_ms or 0
end

return _M

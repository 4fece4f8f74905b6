-- Sandbox state in lua_shared_dicts (shared by all nginx workers). Entities are JSON strings under
-- typed keys; nothing here serialises the whole state except the admin dump.
local json = require("loyalty.sandbox.json")
local inferred = require("loyalty.sandbox.inferred")

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

function _M.count_request(path)
  counters():incr(path, 1, 0)
end

function _M.request_counts()
  local c = counters()
  local out = {}
  for _, k in ipairs(c:get_keys(0)) do out[k] = c:get(k) end
  return out
end

-- Per-worker cache of the decoded config, invalidated by the generation number bumped on reset.
local cached_gen, cached_config = nil, nil
function _M.config()
  local gen = dict():get("gen")
  if gen ~= cached_gen then
    cached_config = _M.get_json("config")
    cached_gen = gen
  end
  return cached_config
end

-- Customers ------------------------------------------------------------------------------------

local ID_KINDS = { "mobile", "email", "external_id", "card_number" }
_M.ID_KINDS = ID_KINDS

function _M.customer(id)
  return _M.get_json("cust:" .. tostring(id))
end

function _M.find_customer(kind, value)
  if value == nil or value == "" then return nil end
  if kind == "id" or kind == "user_id" then return _M.customer(value) end
  local id = dict():get("ix:" .. kind .. ":" .. tostring(value))
  if not id then return nil end
  return _M.customer(id)
end

--- Saves c and (re)indexes its identifiers.
function _M.put_customer(c)
  for _, kind in ipairs(ID_KINDS) do
    if c[kind] and c[kind] ~= "" then dict():set("ix:" .. kind .. ":" .. c[kind], c.id) end
  end
  _M.set_json("cust:" .. c.id, c)
end

function _M.new_customer_id()
  return inferred.CUSTOMER_ID_BASE + _M.next_seq("cust")
end

function _M.each_customer()
  local out = {}
  for n = 1, _M.seq("cust") do
    out[#out + 1] = _M.customer(inferred.CUSTOMER_ID_BASE + n)
  end
  return out
end

-- The per-customer write lock: Capillary answers 521 to a second concurrent write.
function _M.lock(customer_id)
  local ok = dict():add("lock:" .. customer_id, true, inferred.LOCK_TTL)
  return ok and true or false
end

function _M.hold_lock(customer_id, seconds)
  return dict():set("lock:" .. customer_id, true, seconds)
end

function _M.unlock(customer_id)
  dict():delete("lock:" .. customer_id)
end

-- Latency knob ---------------------------------------------------------------------------------

function _M.latency_ms()
  return dict():get("latency_ms") or 0
end

function _M.set_latency(ms)
  dict():set("latency_ms", ms)
end

-- Seed -----------------------------------------------------------------------------------------

local function today() return os.date("!%Y-%m-%d %H:%M:%S") end
_M.now_string = today

local function index_by(list, field)
  local map = {}
  for _, x in ipairs(list or {}) do map[x[field]] = x end
  return map
end

local function seed_customer(cfg, s)
  local c = {
    id = _M.new_customer_id(),
    mobile = s.mobile, email = s.email, external_id = s.external_id, card_number = s.card_number,
    firstname = s.firstname or "", lastname = s.lastname or "",
    type = s.type or "LOYALTY", source = s.source or "INSTORE",
    sources = json.array { s.source or "INSTORE" },
    registered_on = s.registered_on or today(), updated_on = s.registered_on or today(),
    registered_till = s.registered_till,
    loyalty_points = s.loyalty_points or 0, lifetime_points = s.lifetime_points or 0,
    lifetime_purchases = s.lifetime_purchases or 0,
    redeemed = s.redeemed or 0, expired = 0, returned = 0, adjusted = 0,
    fraud_status = "NONE",
    subscriptions = json.array(s.subscriptions or {}),
    custom_fields = json.array(s.custom_fields or {}),
    extended_fields = json.array(s.extended_fields or {}),
    transactions = json.array {},
  }
  c.slab = require("loyalty.sandbox.engine").tier_for(cfg, c.lifetime_purchases).name
  _M.put_customer(c)
  return c
end

--- Validates a seed (decoded table). Returns true or nil, message.
function _M.validate_seed(seed)
  if type(seed) ~= "table" then return nil, "seed must be a JSON object" end
  for _, f in ipairs { "org", "tills", "oauth_clients", "program" } do
    if type(seed[f]) ~= "table" then return nil, "seed: missing " .. f end
  end
  local p = seed.program
  if type(p.tiers) ~= "table" or not p.tiers[1] then return nil, "seed: program.tiers is empty" end
  if type(p.points_per_currency_unit) ~= "number" then return nil, "seed: program.points_per_currency_unit" end
  return true
end

function _M.reset()
  local seed = assert(json.decode(seed_raw), "sandbox: seed is not valid JSON")
  dict():flush_all()
  dict():flush_expired()
  counters():flush_all()
  counters():flush_expired()
  local tills = {}
  local stores = index_by(seed.stores, "code")
  for _, t in ipairs(seed.tills) do
    local store = stores[t.store] or {}
    tills[t.code] = {
      code = t.code, store_code = store.code, store_name = store.name,
      secret_md5 = ngx.md5(t.password or ""),
    }
  end
  local cfg = {
    org = seed.org, program = seed.program, tills = tills, stores = stores,
    clients = index_by(seed.oauth_clients, "key"),
  }
  _M.set_json("config", cfg)
  dict():set("latency_ms", base_latency)
  dict():incr("gen", 1, 0)
  cached_gen = nil
  for _, s in ipairs(seed.customers or {}) do seed_customer(cfg, s) end
  local codes = json.array {}
  for _, cp in ipairs(seed.coupons or {}) do
    local owner = cp.owner
    local owner_id
    if owner then
      for _, kind in ipairs { "mobile", "email", "external_id" } do
        local c = owner[kind] and _M.find_customer(kind, owner[kind])
        if c then owner_id = c.id break end
      end
    end
    _M.set_json("coupon:" .. cp.code, {
      code = cp.code, series_code = cp.series_code, owner_id = owner_id,
      description = cp.description or "", discount_code = cp.discount_code or "",
      discount_type = cp.discount_type or "ABS", discount_value = cp.discount_value or 0,
      valid_till = cp.valid_till or "2099-12-31", detailed_info = cp.detailed_info or "",
      redeemed = false,
    })
    codes[#codes + 1] = cp.code
  end
  _M.set_json("coupons", codes)
end

--- Called from init_by_lua with the seed JSON text and the starting latency.
function _M.init(raw, latency_ms)
  seed_raw = raw
  base_latency = latency_ms or 0
  _M.reset()
end

return _M

-- The Capillary sandbox's entities over the shared dict layer (loyalty.sandbox.store): the decoded
-- config, customers and their identifier index, the per-customer write lock, and loading the seed.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local inferred = require("loyalty.sandbox.capillary.inferred")

local _M = {}

local LOCKED_MESSAGE = "Multiple actions are running for the same customer. Please try after some time."

-- Per-worker cache of the decoded config, invalidated by the generation number bumped on reset.
local cached_gen, cached_config = nil, nil
function _M.config()
  local gen = store.get("gen")
  if gen ~= cached_gen then
    cached_config = store.get_json("config")
    cached_gen = gen
  end
  return cached_config
end

local function now_string() return os.date("!%Y-%m-%d %H:%M:%S") end
_M.now_string = now_string

-- OAuth tokens (v3): live for the client's ttl_seconds.
function _M.new_token_number() return store.next_seq("token") end
function _M.put_token(token, session, ttl) store.set_json("tok:" .. token, session, ttl) end
function _M.token(token) return store.get_json("tok:" .. tostring(token)) end

-- Customers ------------------------------------------------------------------------------------

local ID_KINDS = { "mobile", "email", "external_id", "card_number" }

function _M.customer(id)
  return store.get_json("cust:" .. tostring(id))
end

function _M.find_customer(kind, value)
  if value == nil or value == "" then return nil end
  if kind == "id" or kind == "user_id" then return _M.customer(value) end
  local id = store.get("ix:" .. kind .. ":" .. tostring(value))
  if not id then return nil end
  return _M.customer(id)
end

--- Saves c and (re)indexes its identifiers.
function _M.put_customer(c)
  for _, kind in ipairs(ID_KINDS) do
    if c[kind] and c[kind] ~= "" then store.set("ix:" .. kind .. ":" .. c[kind], c.id) end
  end
  store.set_json("cust:" .. c.id, c)
end

function _M.new_customer_id()
  return inferred.CUSTOMER_ID_BASE + store.next_seq("cust")
end

function _M.each_customer()
  return store.each_numbered("cust", function(n) return _M.customer(inferred.CUSTOMER_ID_BASE + n) end)
end

-- The per-customer write lock: Capillary answers 521 to a second concurrent write.
local function lock(customer_id)
  local ok = store.add("lock:" .. customer_id, true, inferred.LOCK_TTL)
  return ok and true or false
end

function _M.hold_lock(customer_id, seconds)
  return store.set("lock:" .. customer_id, true, seconds)
end

--- Runs fn while holding customer c's write lock; a held lock is refused with Capillary's 521
-- (raised as a sandbox refusal: the dispatcher answers it in the envelope of the path called).
function _M.locked(c, fn)
  if not lock(c.id) then error({ sandbox_refusal = { http = 521, code = 521, message = LOCKED_MESSAGE } }, 0) end
  local ok, a, b = pcall(fn)
  store.delete("lock:" .. c.id)
  if not ok then error(a, 0) end
  return a, b
end

-- Seed -----------------------------------------------------------------------------------------

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
    registered_on = s.registered_on or now_string(), updated_on = s.registered_on or now_string(),
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
  c.slab = require("loyalty.sandbox.capillary.engine").tier_for(cfg, c.lifetime_purchases).name
  _M.put_customer(c)
  return c
end

--- Loads the Capillary part of the (decoded) seed into the freshly flushed dict.
function _M.reset(seed)
  local tills = {}
  local stores = index_by(seed.stores, "code")
  for _, t in ipairs(seed.tills) do
    local s = stores[t.store] or {}
    tills[t.code] = {
      code = t.code, store_code = s.code, store_name = s.name,
      secret_md5 = ngx.md5(t.password or ""),
    }
  end
  local cfg = {
    org = seed.org, program = seed.program, tills = tills, stores = stores,
    clients = index_by(seed.oauth_clients, "key"),
  }
  store.set_json("config", cfg)
  store.incr("gen", 1)
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
    store.set_json("coupon:" .. cp.code, {
      code = cp.code, series_code = cp.series_code, owner_id = owner_id,
      description = cp.description or "", discount_code = cp.discount_code or "",
      discount_type = cp.discount_type or "ABS", discount_value = cp.discount_value or 0,
      valid_till = cp.valid_till or "2099-12-31", detailed_info = cp.detailed_info or "",
      redeemed = false,
    })
    codes[#codes + 1] = cp.code
  end
  store.set_json("coupons", codes)
end

return _M

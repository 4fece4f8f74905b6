-- CRM.COM sandbox state in the sandbox's shared dict, under "crm:" keys: organisation, users and
-- keys, participants with wallets, purchases, spend requests, products, tokens, counters.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local cjson = require("cjson.safe")
local inferred = require("loyalty.sandbox.crmcom.inferred")

local _M = {}

-- The release to serve when the sandbox was started with one (crmcom_release), from init_by_lua.
local release_override

local function index_by(list, field)
  local map = {}
  for _, x in ipairs(list or {}) do map[tostring(x[field])] = x end
  return map
end

local function hex_id(kind, n)
  return (ngx.md5(kind .. ":" .. n)):upper()
end
_M.hex_id = hex_id

function _M.config() return store.get_json("crm:config") end

-- Participants -----------------------------------------------------------------------------

function _M.participant(number) return store.get_json("crm:rp:" .. tostring(number)) end
function _M.put_participant(rp) store.set_json("crm:rp:" .. rp.number, rp) end

--- ident: {id | number | access_token_identifier = {authentication_code | identifier+pass_code}}
function _M.find_participant(ident)
  if type(ident) ~= "table" then return nil end
  if ident.number then return _M.participant(ident.number) end
  if ident.id then
    local n = store.get("crm:ix:id:" .. tostring(ident.id))
    return n and _M.participant(n)
  end
  local ati = ident.access_token_identifier
  if type(ati) == "table" then
    local code = ati.authentication_code or ati.identifier
    local n = code and store.get("crm:ix:tok:" .. tostring(code))
    local rp = n and _M.participant(n)
    if rp and ati.identifier and tostring(ati.pass_code or "") ~= tostring(rp.pass_code or "") then return nil end
    return rp
  end
end

--- ident: an accounts receivable identifier {number | id | name | access_token_identifier}.
function _M.find_account(ident)
  if type(ident) ~= "table" then return nil end
  if type(ident.access_token_identifier) == "table" then
    return _M.find_participant { access_token_identifier = ident.access_token_identifier }
  end
  local n
  if ident.number then n = store.get("crm:ix:ar:" .. tostring(ident.number)) end
  if ident.id then n = store.get("crm:ix:arid:" .. tostring(ident.id)) end
  return n and _M.participant(n)
end

--- A synchronisation definition of the seed by {id | name | alternative_code}.
function _M.find_definition(ident)
  for _, d in ipairs((_M.config() or {}).definitions or {}) do
    for _, k in ipairs { "id", "name", "alternative_code" } do
      if ident[k] ~= nil and tostring(ident[k]) == d[k] then return d end
    end
  end
end

function _M.each_participant()
  local out = json.array {}
  for _, n in ipairs(store.get_json("crm:rplist") or {}) do out[#out + 1] = _M.participant(n) end
  return out
end

-- Events -----------------------------------------------------------------------------------

function _M.purchase(number) return store.get_json("crm:pur:" .. tostring(number)) end
function _M.put_purchase(p) store.set_json("crm:pur:" .. p.number, p) end

function _M.find_purchase(ident)
  if type(ident) ~= "table" then return nil end
  if ident.number then return _M.purchase(ident.number) end
  local n
  if ident.id then n = store.get("crm:pix:" .. tostring(ident.id)) end
  if ident.reference_number then n = store.get("crm:pref:" .. tostring(ident.reference_number)) end
  return n and _M.purchase(n)
end

function _M.index_purchase_ref(ref, number) store.set("crm:pref:" .. tostring(ref), number) end
function _M.index_purchase_id(id, number) store.set("crm:pix:" .. id, number) end

function _M.new_purchase_number()
  local n = store.next_seq("crmpur")
  return string.format("CE%08d", n), hex_id("purchase", n)
end

function _M.each_purchase()
  return store.each_numbered("crmpur", function(n) return _M.purchase(string.format("CE%08d", n)) end)
end

function _M.spend(number) return store.get_json("crm:sr:" .. tostring(number)) end
function _M.put_spend(s) store.set_json("crm:sr:" .. s.number, s) end
function _M.new_spend_number()
  local n = store.next_seq("crmsr")
  return string.format("SR%08d", n), hex_id("spend", n)
end

function _M.index_spend_ref(ref, number) store.set("crm:sref:" .. tostring(ref), number) end
function _M.find_spend_ref(ref)
  local n = store.get("crm:sref:" .. tostring(ref))
  return n and _M.spend(n)
end

function _M.each_spend()
  return store.each_numbered("crmsr", function(n) return _M.spend(string.format("SR%08d", n)) end)
end

-- Products ---------------------------------------------------------------------------------

function _M.store_product(code) return store.get_json("crm:prod:" .. tostring(code)) end

--- Creates or updates a product by code; returns its CRM id. Catalogues are large: the product
-- is encoded by cjson (no empty arrays in it) and its id kept apart, so an update decodes nothing.
function _M.upsert_product(p)
  local id = store.get("crm:prodid:" .. p.code)
  if not id then
    id = hex_id("product", p.code)
    store.set("crm:prodid:" .. p.code, id)
    store.incr("crm:productcount", 1)
  end
  store.set("crm:prod:" .. p.code, cjson.encode { id = id, code = p.code, description = p.description,
                                                  alternative_code = p.alternative_code })
  return id
end

function _M.product_count() return store.get("crm:productcount") or 0 end

-- Tokens -----------------------------------------------------------------------------------

function _M.put_token(token, session, ttl)
  store.set_json("crm:tok:" .. token, session, ttl)
  store.set("crm:tokn:" .. store.next_seq("crmtok"), token, ttl)
  store.incr("crm:logins", 1)
end

function _M.session(token)
  if type(token) ~= "string" or token == "" then return nil end
  return store.get_json("crm:tok:" .. token)
end

function _M.release(token) store.delete("crm:tok:" .. token) end

--- Forgets every live token (the next call with one is refused as expired).
function _M.expire_tokens()
  local n = 0
  for i = 1, store.seq("crmtok") do
    local t = store.get("crm:tokn:" .. i)
    if t and store.get("crm:tok:" .. t) then
      store.delete("crm:tok:" .. t)
      n = n + 1
    end
  end
  return n
end

-- Concurrency counter for calls to one method: observed by specs and the bench.
function _M.enter(method)
  local now = store.incr("crm:inflight:" .. method, 1) or 1
  local key = "crm:maxinflight:" .. method
  if now > (store.get(key) or 0) then store.set(key, now) end
end

function _M.leave(method) store.incr("crm:inflight:" .. method, -1) end

function _M.counters()
  return {
    logins = store.get("crm:logins") or 0,
    sync_calls = store.get("crm:synccalls") or 0,
    max_in_flight_sync = store.get("crm:maxinflight:products/synchronise") or 0,
  }
end

function _M.reset_counters()
  store.set("crm:maxinflight:products/synchronise", 0)
  store.set("crm:synccalls", 0)
  store.set("crm:logins", 0)
end

-- Seed -------------------------------------------------------------------------------------

local function seed_participant(p, i)
  local rp = {
    id = hex_id("participant", i), number = p.number, first_name = p.first_name or "", last_name = p.last_name or "",
    accounts_receivable = p.accounts_receivable, pass_code = p.pass_code,
    access_tokens = json.array(p.access_tokens or {}), wallet_balance = p.wallet_balance or 0,
    sign_up_on = p.sign_up_on or "2020-01-01T09:00:00", life_cycle_state = "EFFECTIVE",
  }
  store.set("crm:ix:id:" .. rp.id, rp.number)
  if rp.accounts_receivable then
    store.set("crm:ix:ar:" .. rp.accounts_receivable, rp.number)
    store.set("crm:ix:arid:" .. hex_id("account", i), rp.number)
  end
  for _, code in ipairs(rp.access_tokens) do store.set("crm:ix:tok:" .. code, rp.number) end
  _M.put_participant(rp)
  return rp.number
end

--- Reseeds the CRM.COM part from the (decoded) seed's `crmcom` section (the dict was flushed by store.reset).
function _M.reset(seed)
  local c = type(seed) == "table" and seed.crmcom
  if type(c) ~= "table" then return end
  local major = tonumber(tostring(release_override or c.release or inferred.DEFAULT_RELEASE):match("^[Rr]?(%d+)"))
  store.set_json("crm:config", {
    release = major or 17, definitions = c.synchronisation_definitions or { { name = "PRODUCTS" } },
    organisation = c.organisation, currency = c.currency or "EUR", scheme = c.reward_scheme or {},
    units = index_by(c.units, "id"), users = index_by(c.users, "username"), keys = index_by(c.web_api_keys, "key"),
  })
  local numbers = json.array {}
  for i, p in ipairs(c.participants or {}) do numbers[#numbers + 1] = seed_participant(p, i) end
  store.set_json("crm:rplist", numbers)
  for _, p in ipairs(c.products or {}) do
    _M.upsert_product(p)
  end
  _M.reset_counters()
end

--- Called from init_by_lua with the sandbox's settings: crmcom_release, the release to serve (nil or
-- "" for the seed's).
function _M.init(settings)
  local release = settings.crmcom_release
  release_override = release ~= "" and release or nil
end

return _M

-- Test knobs under /sandbox/ (never on Capillary paths): reset, state, faults, latency, otp, hold.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local faults = require("loyalty.sandbox.faults")
local otp = require("loyalty.sandbox.otp")
local common = require("loyalty.sandbox.common")
local inferred = require("loyalty.sandbox.inferred")

local _M = {}
local array = json.array

local function bad(message) return 400, { error = message } end

local function seq_list(name, key_of)
  local out = array {}
  for n = 1, store.seq(name) do
    local v = store.get_json(key_of(n))
    if v then out[#out + 1] = v end
  end
  return out
end

local function state()
  local counters = store.request_counts()
  local redemptions = array {}
  for n = 1, store.seq("red") do
    local rid = store.get("redlist:" .. n)
    local r = rid and store.get_json("red:" .. rid)
    if r then redemptions[#redemptions + 1] = r end
  end
  local coupons = array {}
  for _, code in ipairs(store.get_json("coupons") or {}) do
    coupons[#coupons + 1] = store.get_json("coupon:" .. code)
  end
  return 200, {
    customers = array(store.each_customer()),
    ledger = seq_list("ledger", function(n) return "ledger:" .. n end),
    transactions = seq_list("txn", function(n) return "txn:" .. (inferred.TRANSACTION_ID_BASE + n) end),
    redemptions = redemptions, coupons = coupons,
    otps = seq_list("otplog", function(n) return "otplog:" .. n end),
    requests = counters, token_generations = counters["/v3/oauth/token/generate"] or 0,
    faults = faults.list(), latency_ms = store.latency_ms(),
  }
end

local function customer_of(t)
  local c = common.identify_v11(t or {})
  return c
end

local function read_otp(req)
  local a = req.args
  local scope = tostring(a.scope or "POINTS"):upper()
  local c = customer_of(a)
  local subject
  if c then
    subject = otp.customer_subject(c)
  elseif a.entity_type and a.entity_value then
    subject = otp.entity_subject(a.entity_type, a.entity_value)
  else
    return 404, { error = "no such customer" }
  end
  local rec = otp.current(subject, scope)
  if not rec then return 404, { error = "no live code" } end
  return 200, { code = rec.code, valid_until = rec.valid_until, scope = rec.scope, subject = subject }
end

local function add_faults(req)
  local specs = req.body
  if type(specs) ~= "table" then return bad("JSON object or array expected") end
  if specs[1] == nil then specs = { specs } end
  local added = array {}
  for _, spec in ipairs(specs) do
    local f, err = faults.add(spec)
    if not f then return bad(err) end
    added[#added + 1] = f
  end
  return 200, { faults = added }
end

local function hold(req)
  local b = req.body
  if type(b) ~= "table" or type(b.ms) ~= "number" or b.ms <= 0 then return bad("{customer, ms} expected") end
  local c = customer_of(b.customer)
  if not c then return 404, { error = "no such customer" } end
  store.hold_lock(c.id, b.ms / 1000)
  return 200, { customer_id = c.id, held_ms = b.ms }
end

local ROUTES = {
  ["POST /sandbox/reset"] = function() store.reset() return 200, { reset = true } end,
  ["GET /sandbox/state"] = state,
  ["POST /sandbox/faults"] = add_faults,
  ["DELETE /sandbox/faults"] = function() faults.clear() return 200, { faults = array {} } end,
  ["POST /sandbox/latency"] = function(req)
    local ms = type(req.body) == "table" and req.body.ms
    if type(ms) ~= "number" or ms < 0 then return bad("{\"ms\": N} expected") end
    store.set_latency(ms)
    return 200, { latency_ms = ms }
  end,
  ["GET /sandbox/otp"] = read_otp,
  ["POST /sandbox/hold"] = hold,
}

function _M.route(method, path)
  return ROUTES[method .. " " .. path]
end

return _M

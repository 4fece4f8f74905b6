-- The Capillary sandbox's part of the /sandbox/ test knobs: its fields of GET /sandbox/state
-- (customers, ledger, transactions, redemptions, coupons, otps, token generations), GET /sandbox/otp
-- and POST /sandbox/hold. The generic knobs (reset, state, faults, latency) are loyalty.sandbox.admin.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.capillary.store")
local otp = require("loyalty.sandbox.capillary.otp")
local common = require("loyalty.sandbox.capillary.common")
local inferred = require("loyalty.sandbox.capillary.inferred")

local _M = {}
local array = json.array

local function records(seq, key_of)
  return store.each_numbered(seq, function(n) return store.get_json(key_of(n)) end)
end

--- Capillary's fields of GET /sandbox/state.
function _M.state()
  local coupons = array {}
  for _, code in ipairs(store.get_json("coupons") or {}) do
    coupons[#coupons + 1] = store.get_json("coupon:" .. code)
  end
  return {
    customers = cstore.each_customer(),
    ledger = records("ledger", function(n) return "ledger:" .. n end),
    transactions = records("txn", function(n) return "txn:" .. (inferred.TRANSACTION_ID_BASE + n) end),
    redemptions = store.each_numbered("red", function(n)
      local rid = store.get("redlist:" .. n)
      return rid and store.get_json("red:" .. rid)
    end),
    coupons = coupons,
    otps = records("otplog", function(n) return "otplog:" .. n end),
    token_generations = store.request_counts()["/v3/oauth/token/generate"] or 0,
  }
end

local function read_otp(req)
  local a = req.args
  local scope = tostring(a.scope or "POINTS"):upper()
  local c = common.identify_v11(a)
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

local function hold(req)
  local b = req.body
  if type(b) ~= "table" or type(b.ms) ~= "number" or b.ms <= 0 then
    return 400, { error = "{customer, ms} expected" }
  end
  local c = common.identify_v11(b.customer or {})
  if not c then return 404, { error = "no such customer" } end
  cstore.hold_lock(c.id, b.ms / 1000)
  return 200, { customer_id = c.id, held_ms = b.ms }
end

_M.KNOBS = {
  ["GET /sandbox/otp"] = read_otp,
  ["POST /sandbox/hold"] = hold,
}

return _M

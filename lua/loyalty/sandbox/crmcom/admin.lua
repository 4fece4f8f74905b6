-- The CRM.COM sandbox's test knobs under /sandbox/crmcom/: its state (participants, purchases,
-- spend requests, products, logins, the synchronise concurrency high-water mark), expiring every
-- token, resetting the counters. The generic knobs (reset, faults, latency) are loyalty.sandbox.admin.
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.crmcom.store")

local _M = {}

local function state()
  local c = cstore.counters()
  local spends = cstore.each_spend()
  return 200, {
    participants = cstore.each_participant(), purchases = cstore.each_purchase(), spend_requests = spends,
    products = cstore.product_count(), logins = c.logins, sync_calls = c.sync_calls,
    max_in_flight_sync = c.max_in_flight_sync, latency_ms = store.latency_ms(),
  }
end

_M.KNOBS = {
  ["GET /sandbox/crmcom/state"] = state,
  ["POST /sandbox/crmcom/expire_tokens"] = function() return 200, { expired = cstore.expire_tokens() } end,
  ["POST /sandbox/crmcom/reset_counters"] = function() cstore.reset_counters() return 200, { reset = true } end,
}

return _M

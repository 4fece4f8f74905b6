-- Shared by both CRMs: the generic test knobs under /sandbox/ (never on a CRM's paths): reset,
-- state, faults, latency. Each provider adds its own (server.knobs: capillary/admin.lua has otp and
-- hold, crmcom/admin.lua the /sandbox/crmcom/ ones) and its fields of GET /sandbox/state.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local faults = require("loyalty.sandbox.faults")

local _M = {}
local array = json.array

local function bad(message) return 400, { error = message } end

--- Reloads the seed: every provider's state, tokens and counters, faults, latency.
function _M.reset(providers)
  local seed = store.reset()
  for _, p in ipairs(providers) do p.reset(seed) end
end

local function state(_, providers)
  local out = { requests = store.request_counts(), faults = faults.list(), latency_ms = store.latency_ms() }
  for _, p in ipairs(providers) do
    for k, v in pairs(p.state and p.state() or {}) do out[k] = v end
  end
  return 200, out
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

local ROUTES = {
  ["POST /sandbox/reset"] = function(_, providers) _M.reset(providers) return 200, { reset = true } end,
  ["GET /sandbox/state"] = state,
  ["POST /sandbox/faults"] = add_faults,
  ["DELETE /sandbox/faults"] = function() faults.clear() return 200, { faults = array {} } end,
  ["POST /sandbox/latency"] = function(req)
    local ms = type(req.body) == "table" and req.body.ms
    if type(ms) ~= "number" or ms < 0 then return bad("{\"ms\": N} expected") end
    store.set_latency(ms)
    return 200, { latency_ms = ms }
  end,
}

--- The knob for method and path: fn(req, providers) -> status, body; or nil.
function _M.route(method, path, providers)
  local key = method .. " " .. path
  if ROUTES[key] then return ROUTES[key] end
  for _, p in ipairs(providers) do
    if p.knobs and p.knobs[key] then return p.knobs[key] end
  end
end

return _M

-- products/synchronise of a 10,000-product catalogue against the CRM.COM sandbox at 50 ms latency:
-- parallel batches (core.perform_multi) vs one call at a time. Target: parallel >= 4x faster.
-- Run from the checkout: lua5.4 bench/product_sync.lua [PRODUCTS [MAX_IN_FLIGHT]]   (make bench runs it)
local ver = type(jit) == "table" and "5.1" or _VERSION:match("5%.%d")
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/" .. ver .. "/?.so;" .. package.cpath

local loyalty = require "loyalty"
local core = require "loyalty.core"
local sandbox = require "loyalty.sandbox"

local N = tonumber(arg[1]) or 10000
local IN_FLIGHT = tonumber(arg[2]) or 10
local LATENCY_MS = 50
local ROUNDS = 3
local TARGET = 4

-- Workers as in a real server: the sandbox's processing of a batch must not serialise the calls.
local sb = assert(sandbox.start { latency_ms = LATENCY_MS, workers = 4 })

local ok, err = pcall(function()
  local client = assert(loyalty.client { provider = "crmcom", base_url = sb.url .. "/crmapi/rest/v2",
                                         username = "pos.user", password = "pos123", organisation = "SANDBOXORG",
                                         sync_definition = { name = "PRODUCTS" } }) -- mandatory on R17+
  local products = {}
  for i = 1, N do
    products[i] = { code = string.format("SKU-%06d", i), description = "Product " .. i, alternative_code = "ALT" .. i,
                    vat_rate = 19 }
  end
  local function run(in_flight)
    local t0 = core.now()
    local r = assert(client:products_synchronise(products, { max_in_flight = in_flight }))
    local elapsed = core.now() - t0
    assert(#r.processed == N and #r.failed_batches == 0, "synchronisation incomplete")
    return elapsed, r.calls
  end
  run(IN_FLIGHT) -- warm up: login, connections, the sandbox's product table
  local best = { par = math.huge, seq = math.huge }
  local calls
  for _ = 1, ROUNDS do
    local p
    p, calls = run(IN_FLIGHT)
    best.par = math.min(best.par, p)
    best.seq = math.min(best.seq, (run(1)))
  end
  local state = assert(sb:crmcom_state())
  local ratio = best.seq / best.par
  print(string.format("product sync bench (%s, %d products in %d calls of <= 1000, sandbox latency %d ms, best of %d)",
                      type(jit) == "table" and jit.version or _VERSION, N, calls, LATENCY_MS, ROUNDS))
  print(string.format("  one call at a time        %8.1f ms", best.seq * 1000))
  print(string.format("  parallel (%2d in flight)   %8.1f ms   (sandbox saw at most %d in flight)", IN_FLIGHT,
                      best.par * 1000, state.max_in_flight_sync))
  print(string.format("  speed-up                  %8.2fx  (target >= %dx) %s", ratio, TARGET,
                      ratio >= TARGET and "OK" or "BELOW TARGET"))
  client:close()
end)
sb:stop()
if not ok then
  io.stderr:write("bench failed: ", tostring(err), "\n")
  os.exit(1)
end

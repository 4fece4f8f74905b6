-- The example storefront's /metrics location: Prometheus text with the per-worker counters
-- (CRM calls and errors by operation and kind, retries, latency, token refreshes, rules, outbox).
local http = require "support.http"
local sandbox = require "support.sandbox"
local support = require "nginx.support"

-- name{labels} value lines -> { [series] = value }, and checks the exposition format.
local function parse(text)
  local series, types = {}, {}
  for line in text:gmatch("[^\n]+") do
    local kind_name, kind = line:match("^# TYPE (%S+) (%S+)$")
    if kind_name then
      types[kind_name] = kind
    elseif not line:match("^# HELP ") then
      local s, v = line:match("^([%w_]+%b{}) (%S+)$")
      if not s then s, v = line:match("^([%w_]+) (%S+)$") end
      assert(s, "not a sample line: " .. line)
      series[s] = assert(tonumber(v), line)
    end
  end
  return series, types
end

local function sum(series, prefix, must_have)
  local n = 0
  for s, v in pairs(series) do
    if s:sub(1, #prefix) == prefix and (not must_have or s:find(must_have, 1, true)) then n = n + v end
  end
  return n
end

describe("storefront metrics", function()
  local sb, srv

  lazy_setup(function()
    sb, srv = support.start_storefront {
      workers = 2,
      env = { LOYALTY_CLIENT_KEY = sandbox.OAUTH_KEY, LOYALTY_CLIENT_SECRET = sandbox.OAUTH_SECRET },
    }
  end)
  lazy_teardown(function() support.stop_storefront(sb, srv) end)

  it("counts calls, errors, retries, latency and token refreshes, per worker", function()
    for _ = 1, 6 do
      assert.equal(200, assert(http.get(srv.url .. "/loyalty/summary", { ["X-Demo-User"] = "tom" })).status)
    end
    -- one failing call: the sandbox answers 500 every attempt
    assert(sb:faults { match = "/v1.1/customer/get", status = 500, count = 3 })
    local r = assert(http.get(srv.url .. "/loyalty/summary", { ["X-Demo-User"] = "rita" }))
    assert(sb:clear_faults())
    assert.is_true(r.status >= 500)

    local m = assert(http.get(srv.url .. "/metrics"))
    assert.equal(200, m.status)
    assert.truthy(m.headers["content-type"]:find("text/plain", 1, true))
    local series, types = parse(m.body)
    assert.equal("counter", types.loyalty_crm_calls_total)
    assert.equal("histogram", types.loyalty_crm_call_duration_seconds)
    assert.equal(6, sum(series, "loyalty_crm_calls_total{", 'operation="customer_get",result="ok"'))
    assert.equal(1, sum(series, "loyalty_crm_errors_total{", 'operation="customer_get"'))
    assert.is_true(sum(series, "loyalty_crm_retries_total{", 'operation="customer_get"') >= 1)
    -- the histogram: +Inf equals the count, buckets never decrease
    local calls = sum(series, "loyalty_crm_calls_total{")
    assert.equal(calls, sum(series, "loyalty_crm_call_duration_seconds_count{"))
    assert.equal(calls, sum(series, "loyalty_crm_call_duration_seconds_bucket{", 'le="+Inf"'))
    for worker in m.body:gmatch('loyalty_crm_call_duration_seconds_count{worker="(%d+)"}') do
      local last = 0
      for le, v in m.body:gmatch('loyalty_crm_call_duration_seconds_bucket{worker="' .. worker ..
                                 '",le="([^"]+)"} (%d+)') do
        assert.is_true(tonumber(v) >= last, le)
        last = tonumber(v)
      end
    end
    -- one OAuth token for all workers
    assert.equal(1, sum(series, "loyalty_token_refreshes_total{"))
    -- each worker that made its program loaded the rules once
    local reloads = sum(series, "loyalty_rules_reloads_total{")
    assert.is_true(reloads >= 1 and reloads <= 2, reloads)
    assert.equal(0, sum(series, "loyalty_rules_rejections_total{"))
  end)
end)

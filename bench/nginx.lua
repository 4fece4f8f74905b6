-- Throughput of the nginx transports: one nginx worker serving the storefront's points summary
-- (one CRM call per request) against the sandbox at 50 ms latency, 64 concurrent connections
-- (wrk). Each figure is a share of the bound 64 / 0.05 s = 1280 req/s.
-- Run from the checkout root: lua5.4 bench/nginx.lua [seconds]
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath

local runner = require "loyalty.nginx_runner"
local sandbox = require "loyalty.sandbox"
local launch = dofile("examples/openresty/launch.lua")

local LATENCY_MS = 50
local CONNECTIONS = 64
local SECONDS = tonumber(arg and arg[1]) or 5
local BOUND = CONNECTIONS / (LATENCY_MS / 1000)

-- Comparison only: libcurl on the event loop, the thing the nginx transports exist to avoid.
local BLOCKING_LOCATION = [[
    location = /bench/blocking-summary { content_by_lua_block {
        -- one client per worker, as a real handler would keep it
        local cache = package.loaded
        local client = cache["bench.blocking_client"]
        if not client then
            client = assert(require("loyalty.client").new {
                base_url = os.getenv("LOYALTY_BASE_URL"), username = "store.server", password = "server123",
                transport = require("loyalty.transport.curl").new {},
            })
            cache["bench.blocking_client"] = client
        end
        local r, err = client:customer_get { mobile = "919999000001" }
        if not r then ngx.status = 502 end
        ngx.say(r and "ok" or tostring(err))
    } }
]]

local CASES = {
  { name = "proxy (nginx upstream)", transport = "proxy", path = "/loyalty/summary?user=tom" },
  { name = "thread (libcurl in pool)", transport = "thread", path = "/loyalty/summary?user=tom" },
  { name = "blocking libcurl", transport = "proxy", path = "/bench/blocking-summary" },
}

-- CPU seconds (user + system, all threads) used so far by the nginx worker process(es).
local function worker_cpu(srv)
  local master = srv:pid()
  local total, hz = 0, 100 -- USER_HZ is 100 on Linux
  local p = io.popen("pgrep -P " .. master)
  for pid in p:lines() do
    local stat = runner.read_file("/proc/" .. pid .. "/stat") or ""
    local fields = {}
    for f in stat:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = f end
    total = total + (tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)
  end
  p:close()
  return total / hz
end

local function wrk(url, seconds)
  local cmd = string.format("wrk -t2 -c%d -d%ds --timeout 10s %s 2>&1", CONNECTIONS, seconds, runner.shell_quote(url))
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local non2xx = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
  local errors = 0
  for n in (out:match("Socket errors:([^\n]*)") or ""):gmatch("(%d+)") do errors = errors + tonumber(n) end
  local latency = out:match("Latency%s+(%S+)")
  return rps, non2xx, errors, latency, out
end

local sb = assert(sandbox.start { latency_ms = LATENCY_MS, workers = 2 })
local rows = {}
local ok, err = pcall(function()
  for _, case in ipairs(CASES) do
    local srv = assert(launch.start {
      crm_url = sb.url, transport = case.transport, workers = 1, threads = CONNECTIONS,
      server_extra = BLOCKING_LOCATION, log_level = "error",
    })
    local url = srv.url .. case.path
    wrk(url, 1) -- warm-up: program loaded, keep-alive connections open
    -- A blocked worker still owes the warm-up's queued requests: this probe waits behind them.
    local http = require "socket.http"
    http.TIMEOUT = 60
    assert(http.request(url))
    local cpu0 = worker_cpu(srv)
    local rps, non2xx, errors, latency, out = wrk(url, SECONDS)
    local cpu = worker_cpu(srv) - cpu0
    srv:stop()
    if not rps then error("wrk output not understood:\n" .. out) end
    local cpu_per_k = rps > 0 and cpu / (rps * SECONDS) * 1e6 or 0
    rows[#rows + 1] = { case.name, rps, rps / BOUND * 100, latency, non2xx + errors, cpu_per_k }
  end
end)
sb:stop()
if not ok then error(err, 0) end

print(string.format("sandbox latency %d ms, %d connections, one nginx worker, %d s per run; bound %d req/s",
  LATENCY_MS, CONNECTIONS, SECONDS, BOUND))
print(string.format("%-26s %10s %9s %10s %8s %14s", "transport", "req/s", "of bound", "latency", "failed",
  "worker CPU/req"))
for _, r in ipairs(rows) do
  print(string.format("%-26s %10.1f %8.1f%% %10s %8d %11.0f us", r[1], r[2], r[3], r[4], r[5], r[6]))
end

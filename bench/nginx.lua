-- The nginx transports against lua-resty-http (the peer, a measuring stick only: never required
-- by the product). One nginx worker serves a storefront location making one Capillary
-- customer/get per request with a per-worker client; the "CRM" is another nginx answering the
-- sandbox's customer/get reply as a constant file, so what is measured is the storefront
-- worker's own cost. The peer's location does lua-resty-http request_uri with a keep-alive pool
-- plus cjson.decode. Cases are interleaved round by round; best and median are reported.
--
--   lua5.4 bench/nginx.lua [seconds per run] [rounds] [parts, e.g. 1 or 123 (default)] [cases, e.g. socket,peer]
--
-- Three parts: (1) constant CRM, 64 connections: req/s and worker CPU per call, ratios to the
-- peer; (2) CRM answering after 50 ms, 64 connections: share of the 64 / 0.05 s bound;
-- (3) the default transport at 1,000 connections against the 50 ms CRM: req/s and p99.
-- With two or more CPUs the storefront worker runs alone on CPU 1; the CRM, wrk and this script
-- on CPU 0 (the machine may be shared: compare ratios, not absolute figures). A round runs the
-- cases in order, then in reverse (A B B A), each run after a 1 s warm-up of its own case; the
-- figures are per round, and the ratios are taken round by round (both sides see the same noise).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath

local runner = require "loyalty.ngx.runner"
local sandbox = require "loyalty.sandbox"
local core = require "loyalty.core"

local SECONDS = tonumber(arg and arg[1]) or 3
local ROUNDS = tonumber(arg and arg[2]) or 5
-- while iterating: only some parts ("1") and cases ("socket,peer"; the peer is always kept)
local PARTS = arg and arg[3] or "123"
local ONLY = arg and arg[4]
-- LOYALTY_BENCH_PROFILE=file: GET /b/prof starts LuaJIT's sampling profiler (jit.p) in the
-- storefront worker, /b/prof?stop=1 writes its report
local PROF = os.getenv("LOYALTY_BENCH_PROFILE") and ("location = /b/prof { content_by_lua_block { " ..
  "package.path = '/usr/share/luajit-2.1.0-beta3/?.lua;' .. package.path; local p = require 'jit.p' " ..
  "if ngx.var.arg_stop then p.stop() else p.start('" .. (os.getenv("LOYALTY_BENCH_PROFILE_MODE") or "Fl") ..
  "', '" .. os.getenv("LOYALTY_BENCH_PROFILE") .. "') end ngx.say('ok') } }") or ""
-- LOYALTY_BENCH_JITV=file: the storefront's LuaJIT trace log (jit.v), to find what aborts traces
local JITV = os.getenv("LOYALTY_BENCH_JITV") and ("package.path = '/usr/share/luajit-2.1.0-beta3/?.lua;' .. " ..
  "package.path; require('jit.v').on('" .. os.getenv("LOYALTY_BENCH_JITV") .. "')") or ""
-- LOYALTY_BENCH_PERF=file: `perf record -g` of the storefront worker during the first case
local PERF = os.getenv("LOYALTY_BENCH_PERF")
local CONNECTIONS = 64
local LATENCY_MS = 50
local BOUND = CONNECTIONS / (LATENCY_MS / 1000)
local MOBILE = "919999000001"
local PEER = os.getenv("LOYALTY_PEER_HTTP") or "/work/shared/peers/lua-resty-http"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local ncpu = tonumber(sh("nproc")) or 1
local can_pin = ncpu >= 2 and runner.run("command -v taskset >/dev/null 2>&1")
local function pin(pid, cpu)
  if can_pin then assert(runner.run(("taskset -a -p -c %d %d >/dev/null"):format(cpu, pid)), "taskset failed") end
end
local self_pid = tonumber(runner.read_file("/proc/self/stat"):match("^(%d+)"))
pin(self_pid, 0) -- wrk and the CRM inherit CPU 0

local function worker_pids(srv)
  local pids = {}
  for pid in sh("pgrep -P " .. srv:pid()):gmatch("%d+") do pids[#pids + 1] = tonumber(pid) end
  return pids
end

-- CPU seconds (user + system, all threads) used so far by the server's worker processes.
local function worker_cpu(srv)
  local total = 0
  for _, pid in ipairs(worker_pids(srv)) do
    local stat = runner.read_file("/proc/" .. pid .. "/stat") or ""
    local fields = {}
    for f in stat:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = f end
    total = total + (tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)
  end
  return total / 100 -- USER_HZ
end

local function wrk(url, connections, seconds)
  local threads = connections >= 256 and 2 or 1
  local out = sh(string.format("wrk -t%d -c%d -d%ds --timeout 10s --latency %s", threads, connections, seconds,
                               runner.shell_quote(url)))
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  if not rps then error("wrk output not understood:\n" .. out, 0) end
  local requests = tonumber(out:match("(%d+) requests in"))
  local failed = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
  for n in (out:match("Socket errors:([^\n]*)") or ""):gmatch("(%d+)") do failed = failed + tonumber(n) end
  return { rps = rps, requests = requests, failed = failed, p99 = out:match("\n%s*99%%%s+(%S+)") }
end

-- The reply the CRM gives: the sandbox's own customer/get reply for the seeded shopper.
local function capture_reply()
  local sb = assert(sandbox.start {})
  local body
  local ok, err = pcall(function()
    local s = core.session {}
    local req = assert(core.build_request {
      method = "GET", base_url = sb.url, path = "/v1.1/customer/get", query = { mobile = MOBILE, format = "json" },
      headers = { Authorization = core.basic_auth("store.server", "server123"), Accept = "application/json" },
    })
    local res = assert(s:perform(req))
    assert(res.status == 200, "sandbox customer/get: HTTP " .. res.status)
    body = res.body
  end)
  sb:stop()
  assert(ok, err)
  return body
end

local CRM_CONF = [[
server {
  listen 127.0.0.1:${port} reuseport backlog=4096;
  keepalive_requests 1000000;
  location /v1.1/customer/get { default_type application/json; REPLY }
  location /slow/v1.1/customer/get { content_by_lua_block { ngx.sleep(LATENCY) ngx.exec("/v1.1/customer/get") } }
}
]]

-- The storefront: one location per transport (the client is made once per worker, through the
-- default transport selection, as a real handler keeps it), and the peer's location.
local STORE_CONF = [[
lua_shared_dict loyalty_tokens 1m;
init_by_lua_block {
  JITV
  -- a pool as large as the 1,000-connection case needs: otherwise most calls connect anew
  require("loyalty.ngx").configure { proxy_upstreams = { ["CRM_URL"] = "crm" }, socket_pool_size = 1024 }
  require "loyalty.client"
  require "resty.http"
  require "cjson"
  -- The handlers, made once: each location below calls one with constants (no ngx.var, no regex).
  local clients = {}
  package.loaded["bench.handlers"] = {
    -- one client per worker and transport, made through the default transport selection
    loyalty = function(transport, suffix)
      local key = transport .. suffix
      local client = clients[key]
      if not client then
        local ngx_conf = require "loyalty.ngx"
        local was = ngx_conf.settings().transport
        ngx_conf.configure { transport = transport }
        client = assert(require("loyalty.client").new {
          base_url = "CRM_URL" .. suffix, username = "store.server", password = "server123", timeout_ms = 10000,
        })
        ngx_conf.configure { transport = was }
        clients[key] = client
      end
      local r, err = client:customer_get { mobile = "MOBILE" }
      if not r or not r.customer then
        ngx.status = 502
        ngx.say(tostring(err))
        return
      end
      ngx.say("ok")
    end,
    peer = function(suffix)
      local httpc = require("resty.http").new()
      httpc:set_timeouts(3000, 10000, 10000)
      local res, err = httpc:request_uri("CRM_URL" .. suffix .. "/v1.1/customer/get?mobile=MOBILE&format=json", {
        headers = { Authorization = "AUTH", Accept = "application/json", ["User-Agent"] = "bench" },
        keepalive_timeout = 60000, keepalive_pool = 64,
      })
      local body = res and res.status == 200 and require("cjson").decode(res.body)
      if not body then
        ngx.status = 502
        ngx.say(tostring(err or (res and res.status)))
        return
      end
      ngx.say("ok")
    end,
  }
}
upstream crm {
  server CRM_ADDR;
  keepalive 1024;
  keepalive_requests 1000000;
}
server {
  listen 127.0.0.1:${port} reuseport backlog=4096;
  keepalive_requests 1000000;
  include EXAMPLE_DIR/loyalty_proxy.conf;

  PROF
  location = /b/socket { content_by_lua_block { package.loaded["bench.handlers"].loyalty("socket", "") } }
  location = /b/proxy { content_by_lua_block { package.loaded["bench.handlers"].loyalty("proxy", "") } }
  location = /b/thread { content_by_lua_block { package.loaded["bench.handlers"].loyalty("thread", "") } }
  location = /b/peer { content_by_lua_block { package.loaded["bench.handlers"].peer("") } }
  location = /b/socket/slow { content_by_lua_block { package.loaded["bench.handlers"].loyalty("socket", "/slow") } }
  location = /b/proxy/slow { content_by_lua_block { package.loaded["bench.handlers"].loyalty("proxy", "/slow") } }
  location = /b/thread/slow { content_by_lua_block { package.loaded["bench.handlers"].loyalty("thread", "/slow") } }
  location = /b/peer/slow { content_by_lua_block { package.loaded["bench.handlers"].peer("/slow") } }
}
]]

local function fill(text, values)
  for k, v in pairs(values) do text = text:gsub(k, (tostring(v):gsub("%%", "%%%%"))) end
  return text
end

local function median(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  if n == 0 then return 0 end
  if n % 2 == 1 then return t[(n + 1) / 2] end
  return (t[n / 2] + t[n / 2 + 1]) / 2
end

local function best(xs, lower)
  local b = xs[1] or 0
  for _, x in ipairs(xs) do if (lower and x < b) or (not lower and x > b) then b = x end end
  return b
end

local dir = sh("mktemp -d /tmp/loyalty-bench-nginx.XXXXXX"):match("%S+")
local crm, store
local ok, err = pcall(function()
  runner.run("chmod 755 " .. runner.shell_quote(dir)) -- nginx workers may run as another user
  local f = assert(io.open(dir .. "/reply.json", "wb"))
  f:write(capture_reply())
  f:close()
  -- nginx's `return` with the reply inline is its cheapest answer; a file if the text needs escaping
  local reply = runner.read_file(dir .. "/reply.json")
  local answer = reply:find("[%$'\\\n]") and ("alias " .. dir .. "/reply.json;") or ("return 200 '" .. reply .. "';")
  crm = assert(runner.start { http = fill(CRM_CONF, { DIR = dir, LATENCY = LATENCY_MS / 1000, REPLY = answer }),
                              workers = 1, worker_connections = 8192 })
  local crm_url = crm.url
  local example_dir = runner.tree_root() .. "/examples/openresty"
  store = assert(runner.start {
    http = fill(STORE_CONF, { CRM_URL = crm_url, CRM_ADDR = crm_url:match("//(.*)$"), EXAMPLE_DIR = example_dir,
                              JITV = JITV, PROF = PROF, MOBILE = MOBILE,
                              AUTH = core.basic_auth("store.server", "server123") }),
    main = "thread_pool loyalty threads=" .. CONNECTIONS .. " max_queue=65536;",
    workers = 1, worker_connections = 8192, log_level = "error",
    lua_package_path = PEER .. "/lib/?.lua;",
  })
  for _, pid in ipairs(worker_pids(store)) do pin(pid, can_pin and 1 or 0) end
end)
if not ok then
  if store then store:stop() end
  if crm then crm:stop() end
  runner.run("rm -rf " .. runner.shell_quote(dir))
  error(err, 0)
end

local CASES = {
  { name = "socket (cosocket, default)", path = "/b/socket" },
  { name = "proxy (nginx upstream)", path = "/b/proxy" },
  { name = "thread (libcurl in pool)", path = "/b/thread" },
  { name = "lua-resty-http + cjson (peer)", path = "/b/peer", peer = true },
}
if ONLY then
  local kept = {}
  for _, case in ipairs(CASES) do
    if case.peer or ("," .. ONLY .. ","):find("," .. case.path:match("^/b/(%w+)") .. ",", 1, true) then
      kept[#kept + 1] = case
    end
  end
  CASES = kept
end

-- One measured run of a case, after a 1 s warm-up of that same case (so no case pays for the
-- one before it: the CRM's idle connections, the worker's GC debt). Returns requests, worker CPU
-- seconds, wall seconds and failures.
-- Busy and total jiffies of CPU 0 so far (everything on it: wrk, the CRM, other people's work).
local function cpu0_jiffies()
  local line = runner.read_file("/proc/stat"):match("\ncpu0 ([^\n]+)") or ""
  local busy, total, i = 0, 0, 0
  for n in line:gmatch("%d+") do
    i = i + 1
    total = total + tonumber(n)
    if i ~= 4 and i ~= 5 then busy = busy + tonumber(n) end -- not idle, not iowait
  end
  return busy, total
end

local function measured(case, suffix, connections, profiled)
  local url = store.url .. case.path .. suffix
  wrk(url, connections, 1)
  if profiled and PROF ~= "" then sh("curl -s " .. store.url .. "/b/prof") end
  if profiled and PERF then
    sh(("perf record -q -F 1999 -g -o %s -p %d -- sleep %d >/dev/null 2>&1 &"):format(PERF, worker_pids(store)[1],
                                                                                 SECONDS))
  end
  local cpu0, t0 = worker_cpu(store), core.now()
  local load0, jiffies0 = cpu0_jiffies()
  local r = wrk(url, connections, SECONDS)
  local cpu, wall = worker_cpu(store) - cpu0, core.now() - t0
  local load1, jiffies1 = cpu0_jiffies()
  if profiled and PROF ~= "" then sh("curl -s '" .. store.url .. "/b/prof?stop=1'") end
  return r.requests, cpu, wall, r.failed, (load1 - load0) / math.max(jiffies1 - jiffies0, 1)
end

-- Each round runs the cases in order and then in reverse (A B B A for a transport and the peer):
-- a slow spell of the shared machine falls on both sides alike. Returns per case the per-round
-- {rps, cpu_us (worker CPU per call), busy (worker CPU / wall time), load_busy (CPU 0's busy
-- share)} and the failures.
local function rounds(suffix, connections)
  local out = {}
  for i in ipairs(CASES) do out[i] = { rps = {}, cpu_us = {}, busy = {}, load_busy = {}, failed = 0 } end
  local order = {}
  for i = 1, #CASES do order[i], order[2 * #CASES + 1 - i] = i, i end
  for round = 1, ROUNDS do
    local sums = {}
    for i in ipairs(CASES) do sums[i] = { requests = 0, cpu = 0, wall = 0, load = 0 } end
    for n, i in ipairs(order) do
      local requests, cpu, wall, failed, load = measured(CASES[i], suffix, connections, round == 1 and n == 1)
      local s = sums[i]
      s.requests, s.cpu, s.wall, s.load = s.requests + requests, s.cpu + cpu, s.wall + wall, s.load + load / 2
      out[i].failed = out[i].failed + failed
    end
    for i, s in ipairs(sums) do
      local o = out[i]
      o.rps[round] = s.requests / s.wall
      o.cpu_us[round] = s.requests > 0 and s.cpu / s.requests * 1e6 or 0
      o.busy[round] = s.cpu / s.wall
      o.load_busy[round] = s.load
    end
  end
  return out
end

-- Per-round ratios of case a to case b: throughput a/b and CPU per call b/a.
local function ratios(a, b)
  local rps, cpu = {}, {}
  for r = 1, #a.rps do
    rps[r] = a.rps[r] / b.rps[r]
    cpu[r] = b.cpu_us[r] / a.cpu_us[r]
  end
  return rps, cpu
end

local function list(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = string.format("%.2f", x) end
  return table.concat(t, " ")
end

local run_ok, run_err = pcall(function()
  local where = can_pin and "storefront worker alone on CPU 1; CRM, wrk on CPU 0" or "no CPU pinning"
  print(string.format("bench/nginx.lua: one storefront worker, %d rounds x %d s per case, interleaved; %s; %s",
                      ROUNDS, SECONDS, where, "machine shared with other work: compare ratios"))

  if not PARTS:find("1", 1, true) then goto part2 end
  do
  local res = rounds("", CONNECTIONS)
  local peer = res[#CASES]
  print(string.format("\n1. constant CRM reply (sandbox customer/get, %d bytes), %d connections", #runner.read_file(
                      dir .. "/reply.json"), CONNECTIONS))
  print(string.format("%-31s %9s %9s %10s %10s %11s %11s %6s %6s %6s", "case", "best r/s", "median", "x peer",
                      "x peer", "CPU/call", "CPU/call", "busy", "CPU 0", "failed"))
  print(string.format("%-31s %9s %9s %10s %10s %11s %11s", "", "", "", "(best rd)", "(median)", "(best)",
                      "(median)"))
  for i, case in ipairs(CASES) do
    local o = res[i]
    local r = ratios(o, peer)
    print(string.format("%-31s %9.0f %9.0f %9.2fx %9.2fx %8.1f us %8.1f us %5.0f%% %5.0f%% %6d", case.name,
                        best(o.rps), median(o.rps), best(r), median(r), best(o.cpu_us, true), median(o.cpu_us),
                        median(o.busy) * 100, median(o.load_busy) * 100, o.failed))
  end
  -- CPU 0 (wrk and the CRM) has a ceiling of its own: wrk straight at the CRM shows about where
  local direct = {}
  for r = 1, 3 do direct[r] = wrk(crm.url .. "/v1.1/customer/get", CONNECTIONS, SECONDS).rps end
  print(string.format("wrk straight at the CRM (what CPU 0 alone can drive, about the ceiling here): %.0f req/s",
                      median(direct)))
  local rps_ratio, cpu_ratio = ratios(res[1], peer)
  print(string.format("default transport / peer throughput, round by round: %s; best %.2f, median %.2f " ..
                      "(target >= 1.25)", list(rps_ratio), best(rps_ratio), median(rps_ratio)))
  print(string.format("peer CPU per call / default transport's, round by round: %s; best %.2f, median %.2f",
                      list(cpu_ratio), best(cpu_ratio), median(cpu_ratio)))
  print("(busy: the worker's CPU time / wall time; below ~95% it waited on the CRM or wrk, or lost CPU 1 to other " ..
        "work; CPU 0: its busy share, wrk, the CRM and anything else there: near 100% it is the limit)")
  end

  ::part2::
  if not PARTS:find("2", 1, true) then goto part3 end
  do
  local res = rounds("/slow", CONNECTIONS)
  -- the CRM alone, wrk straight at it: what its own 50 ms (plus nginx's timer slack) allows
  local direct = {}
  for r = 1, 3 do direct[r] = wrk(crm.url .. "/slow/v1.1/customer/get", CONNECTIONS, SECONDS).rps end
  print(string.format("\n2. CRM answering after %d ms, %d connections: bound %d req/s; the CRM alone (wrk at it) " ..
                      "%.0f req/s", LATENCY_MS, CONNECTIONS, BOUND, median(direct)))
  print(string.format("%-31s %9s %9s %9s %11s %6s", "case", "best r/s", "median", "of bound", "CPU/call", "failed"))
  for i, case in ipairs(CASES) do
    local o = res[i]
    print(string.format("%-31s %9.0f %9.0f %8.1f%% %8.1f us %6d", case.name, best(o.rps), median(o.rps),
                        median(o.rps) / BOUND * 100, median(o.cpu_us), o.failed))
  end
  end

  ::part3::
  if not PARTS:find("3", 1, true) then return end
  print(string.format("\n3. 1,000 connections, CRM answering after %d ms (bound %d req/s)", LATENCY_MS,
                      1000 / (LATENCY_MS / 1000)))
  local rps, p99, failed = {}, {}, 0
  wrk(store.url .. "/b/socket/slow", 1000, 1)
  for r = 1, math.max(1, math.floor(ROUNDS / 2)) do
    local w = wrk(store.url .. "/b/socket/slow", 1000, SECONDS)
    rps[r], p99[r], failed = w.rps, w.p99, failed + w.failed
  end
  print(string.format("socket (default): best %.0f req/s, median %.0f req/s, p99 per run: %s, failed %d",
                      best(rps), median(rps), table.concat(p99, " "), failed))
end)

store:stop()
crm:stop()
runner.run("rm -rf " .. runner.shell_quote(dir))
if not run_ok then error(run_err, 0) end

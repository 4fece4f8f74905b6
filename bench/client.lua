-- Sequential keep-alive calls to the local sandbox (a cheap endpoint): this client against
-- lua-socket's socket.http and against a plain C loop on one reused libcurl handle (the limit),
-- over plain HTTP and over HTTPS (every real CRM; lua-socket uses lua-sec's ssl.https there).
-- Over HTTP, wrk on one keep-alive connection shows the rate the sandbox allows any client, and a
-- last part repeats the HTTP sides against nginx returning a constant (no server work at all).
-- Run from the checkout: lua5.4 bench/client.lua [CALLS]   (make bench runs it)
--   lua5.4 bench/client.lua --callgrind   per-call instruction counts over HTTP (deterministic, needs
--   valgrind): each side runs 200 and 2200 calls under callgrind; (Ir(2200) - Ir(200)) / 2000 is one call.
local ver = type(jit) == "table" and "5.1" or _VERSION:match("5%.%d")
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/" .. ver .. "/?.so;" .. package.cpath

local BASIC = "Basic c3RvcmUuc2VydmVyOjhhMTZhNmI3MDUwNWViMWYxZmY3Y2RjMGNkNTU1OWE3"
local QUERY = { source = "INSTORE", identifierName = "mobile", identifierValue = "919999000001" }
local LOOKUP = "/v2/customers/lookup?identifierName=mobile&identifierValue=919999000001&source=INSTORE"

local function new_client(base_url, ca_file)
  return assert(require("loyalty").client { base_url = base_url, username = "store.server", password = "server123",
                                            ca_file = ca_file })
end

-- lua-socket at its best: TCP_NODELAY like libcurl, or the second TLS record of a request waits
-- for the server's delayed ACK (40 ms a call). A lua-socket socket has no descriptor before
-- connect, so the option is set right after it.
local function socket_nodelay()
  local socket = require "socket"
  local methods = getmetatable(socket.tcp()).__index
  local connect = methods.connect
  methods.connect = function(sock, ...)
    local ok, err = connect(sock, ...)
    if ok then sock:setoption("tcp-nodelay", true) end
    return ok, err
  end
  socket_nodelay = function() end
end

-- n lua-socket calls; each opens a new connection (and, over HTTPS, a new TLS session).
local function socket_calls(base_url, n, ca_file)
  socket_nodelay()
  local ltn12 = require "ltn12"
  local https = base_url:match("^https:")
  local http = https and require "ssl.https" or require "socket.http"
  for _ = 1, n do
    local sink = {}
    local ok, status = http.request { url = base_url .. LOOKUP, sink = ltn12.sink.table(sink),
                                      headers = { Authorization = BASIC, Accept = "application/json" },
                                      cafile = ca_file, verify = https and "peer" or nil }
    assert(ok and status == 200, "lua-socket call failed: " .. tostring(status))
  end
end

-- n lookups on one client; a failure stops the bench. Checked with `if`, as the C loop checks
-- its return codes: an assert() per call would be a C call the C loop does not make.
local function lookups(client, n)
  for _ = 1, n do
    local result, err = client:v2_customer_lookup(QUERY)
    if not result then error("client call failed: " .. tostring(err)) end
  end
end

-- `--run SIDE BASE_URL N` runs one side's calls in this process (under callgrind).
if arg[1] == "--run" then
  local n = assert(tonumber(arg[4]))
  if arg[2] == "client" then
    local client = new_client(arg[3])
    lookups(client, n)
    client:close()
  else
    socket_calls(arg[3], n)
  end
  return
end

local core = require "loyalty.core"
local sandbox = require "loyalty.sandbox"
local runner = require "loyalty.ngx.runner"

local CALLGRIND = arg[1] == "--callgrind"
local N = tonumber(arg[1]) or 2000
-- Short interleaved rounds, the best of each side: this host's speed drifts from second to second.
local ROUNDS = 15
-- Over HTTPS lua-socket pays a TLS handshake per call: fewer calls and rounds keep the run short.
local TLS_N, TLS_ROUNDS = math.max(1, math.floor(N / 4)), 5

assert(os.execute("mkdir -p build && cc -O2 -o build/c_loop bench/c_loop.c -lcurl"), "cannot build bench/c_loop.c")

-- A throwaway self-signed certificate for 127.0.0.1: the sandbox serves HTTPS with it and every
-- side verifies the server against it.
local certdir = assert(io.popen("mktemp -d /tmp/loyalty-bench-cert.XXXXXX")):read("*l")
assert(runner.run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
  .. " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " .. certdir .. "/key.pem -out "
  .. certdir .. "/cert.pem 2>/dev/null"), "openssl failed")
local ca_file = certdir .. "/cert.pem"

-- Servers on CPU 0, this process and everything it starts afterwards (the C loop, wrk) on CPU 1:
-- every side then runs where the others do, whatever the scheduler would pick from run to run.
-- A server started while this process sits on CPU 0 inherits that CPU. nil where it can't be done.
local function cpu_pinning()
  local p = assert(io.popen("nproc"))
  local ncpu = tonumber(p:read("*l"))
  p:close()
  if not ncpu or ncpu < 2 or not runner.run("command -v taskset >/dev/null 2>&1") then return nil end
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  return function(cpu)
    assert(runner.run(("taskset -a -p -c %d %s >/dev/null"):format(cpu, pid)), "taskset failed")
  end
end
local pin = cpu_pinning()

local function start_server(start)
  if pin then pin(0) end
  local server, err = start()
  if pin then pin(1) end
  return assert(server, err)
end

local sb = start_server(function() return sandbox.start { tls = { cert = ca_file, key = certdir .. "/key.pem" } } end)

local clients = { http = new_client(sb.url), https = new_client(sb.tls_url, ca_file) }

-- The C loop and wrk send the very header lines the client sends on this GET (Accept,
-- Authorization, User-Agent), so all make the same request and only the client code differs.
local quoted_headers = {}
for i, line in ipairs(assert(clients.http:header_lines(clients.http.auth_value, false))) do
  quoted_headers[i] = runner.shell_quote(line)
end

local function c_loop_cmd(base_url, n)
  local cmd = "build/c_loop " .. runner.shell_quote(base_url .. LOOKUP) .. " " .. n .. " "
              .. table.concat(quoted_headers, " ")
  if base_url:match("^https:") then cmd = "C_LOOP_CAINFO=" .. runner.shell_quote(ca_file) .. " " .. cmd end
  return cmd
end

local function c_loop(base_url, n)
  local p = assert(io.popen(c_loop_cmd(base_url, n) .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  return (assert(tonumber(out:match("calls_per_sec=([%d.]+)")), "c_loop failed: " .. out))
end

local function client_rate(client, n)
  local t0 = core.now()
  lookups(client, n)
  return n / (core.now() - t0)
end

local function lua_socket(base_url, n)
  local t0 = core.now()
  socket_calls(base_url, n, ca_file)
  return n / (core.now() - t0)
end

-- Instructions callgrind counts for a command (its whole process).
local function instructions(cmd)
  local p = assert(io.popen("valgrind --tool=callgrind --callgrind-out-file=/dev/null " .. cmd
                            .. " 2>&1 >/dev/null"))
  local out = p:read("*a")
  p:close()
  return (assert(tonumber(out:match("Collected : (%d+)")), "callgrind failed: " .. out))
end

local function per_call(cmd_for)
  return (instructions(cmd_for(2200)) - instructions(cmd_for(200))) / 2000
end

local function lua_cmd(side)
  local interp = arg[-1] or "lua5.4"
  return function(n) return string.format("%s bench/client.lua --run %s '%s' %d", interp, side, sb.url, n) end
end

-- On a VM an idle vCPU takes tens of microseconds to wake, and each sequential call wakes the
-- server and then the client: that latency, not either side's code, would set the figures. Like
-- tuned's latency-performance profile, keep the CPUs out of idle states while measuring (the
-- kernel honours it while the file stays open; root only, else the figures carry the wake-ups).
local function hold_cpus_awake()
  local f = io.open("/dev/cpu_dma_latency", "wb")
  if not f then return nil end
  f:setvbuf("no")
  if not f:write("\0\0\0\0") then -- a 32-bit 0: no idle state may add latency
    f:close()
    return nil
  end
  return f
end

local vm = type(jit) == "table" and jit.version or _VERSION

-- wrk on one connection with the client's headers: an HTTP/1.1 client doing next to no work per
-- call, so its rate is what the sandbox and the kernel allow any client (the best of 3 seconds).
-- nil without wrk.
local function wrk_ceiling(base_url)
  if not runner.run("command -v wrk >/dev/null 2>&1") then return nil end
  local cmd = "wrk -t1 -c1 -d1s -H " .. table.concat(quoted_headers, " -H ") .. " "
              .. runner.shell_quote(base_url .. LOOKUP)
  local best = 0
  for _ = 1, 3 do
    local p = assert(io.popen(cmd .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
    assert(rps and not out:match("Non%-2xx"), "wrk failed: " .. out)
    best = math.max(best, rps)
  end
  return best
end

-- The best rate of each side (C loop, client, lua-socket) over interleaved rounds.
local function best_rates(client, base_url, n, rounds)
  local best = { c = 0, client = 0, socket = 0 }
  for _ = 1, rounds do
    best.c = math.max(best.c, c_loop(base_url, n))
    best.client = math.max(best.client, client_rate(client, n))
    best.socket = math.max(best.socket, lua_socket(base_url, n))
  end
  return best
end

-- One figure a side; `targets` adds the issue's targets to the ratios.
local function print_rates(title, best, targets)
  print(title)
  print(string.format("  plain C libcurl loop  %9.0f calls/s", best.c))
  print(string.format("  lua-loyalty client    %9.0f calls/s   %.3fx the C loop%s", best.client, best.client / best.c,
                      targets and " (target >= 0.90)" or ""))
  print(string.format("  lua-socket            %9.0f calls/s   client is %.1fx lua-socket (%sthe C loop itself is"
                      .. " %.1fx)", best.socket, best.client / best.socket, targets and "target >= 3; " or "",
                      best.c / best.socket))
end

local function report(scheme, base_url, n, rounds, awake)
  local best = best_rates(clients[scheme], base_url, n, rounds)
  print_rates(string.format("client bench (%s, %s, %d sequential calls, best of %d rounds, GET /v2/customers/lookup,"
                            .. " %s%s)", vm, scheme:upper(), n, rounds,
                            awake and "CPUs held out of idle" or "CPUs may idle: run as root",
                            pin and ", sandbox on CPU 0, clients on CPU 1" or ""), best, true)
  local ceiling = scheme == "http" and wrk_ceiling(base_url)
  if ceiling then
    print(string.format("  wrk, one connection   %9.0f calls/s   a client doing next to nothing: %.1fx lua-socket",
                        ceiling, ceiling / best.socket))
  end
end

-- nginx answering every call with the lookup's reply as a constant: no server work is left in the
-- figures, only each client's own cost (and, for lua-socket, a new connection per call).
local CONSTANT_CONF = [[
  server {
    listen 127.0.0.1:${port};
    location / { default_type application/json; return 200 '{"warnings":[],"entity":343445001}'; }
  }
]]

local function report_constant(n, rounds)
  local server = start_server(function() return runner.start { http = CONSTANT_CONF } end)
  local client
  local ok, err = pcall(function()
    client = new_client(server.url)
    client_rate(client, 100)
    print_rates(string.format("client bench (%s, HTTP to nginx returning the reply as a constant: no server work,"
                              .. " best of %d rounds)", vm, rounds), best_rates(client, server.url, n, rounds))
  end)
  if client then client:close() end
  server:stop()
  assert(ok, err)
end

local awake = hold_cpus_awake()
local ok, err = pcall(function()
  client_rate(clients.http, 100) -- warm up the sandbox and both connections
  client_rate(clients.https, 100)
  if CALLGRIND then
    local c = per_call(function(n) return c_loop_cmd(sb.url, n) end)
    local cl = per_call(lua_cmd("client"))
    local so = per_call(lua_cmd("socket"))
    print(string.format("client bench (%s, HTTP, callgrind instructions per call, client side only)", vm))
    print(string.format("  plain C libcurl loop  %9.0f Ir/call", c))
    print(string.format("  lua-loyalty client    %9.0f Ir/call   %.2fx the C loop's count", cl, cl / c))
    print(string.format("  lua-socket http       %9.0f Ir/call   %.2fx the client's count", so, so / cl))
    return
  end
  report("http", sb.url, N, ROUNDS, awake)
  report("https", sb.tls_url, TLS_N, TLS_ROUNDS, awake)
  report_constant(N, 5)
end)
if awake then awake:close() end
for _, c in pairs(clients) do c:close() end
sb:stop()
runner.run("rm -rf '" .. certdir .. "'")
assert(ok, err)

-- Sequential keep-alive calls to the local sandbox (a cheap endpoint): this client against
-- lua-socket's socket.http and against a plain C loop on one reused libcurl handle (the limit).
-- Run from the checkout: lua5.4 bench/client.lua [CALLS]   (make bench runs it)
local ver = type(jit) == "table" and "5.1" or _VERSION:match("5%.%d")
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/" .. ver .. "/?.so;" .. package.cpath

local loyalty = require "loyalty"
local core = require "loyalty.core"
local sandbox = require "loyalty.sandbox"
local http = require "socket.http"
local ltn12 = require "ltn12"

local N = tonumber(arg[1]) or 5000
local ROUNDS = 3
local BASIC = "Basic c3RvcmUuc2VydmVyOjhhMTZhNmI3MDUwNWViMWYxZmY3Y2RjMGNkNTU1OWE3"
local QUERY = { source = "INSTORE", identifierName = "mobile", identifierValue = "919999000001" }

assert(os.execute("mkdir -p build && cc -O2 -o build/c_loop bench/c_loop.c -lcurl"), "cannot build bench/c_loop.c")
local sb = assert(sandbox.start {})
local url = sb.url .. "/v2/customers/lookup?identifierName=mobile&identifierValue=919999000001&source=INSTORE"

local function c_loop()
  local p = assert(io.popen("build/c_loop '" .. url .. "' " .. N .. " 'Authorization: " .. BASIC .. "' 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  return (assert(tonumber(out:match("calls_per_sec=([%d.]+)")), "c_loop failed: " .. out))
end

local client = assert(loyalty.client { base_url = sb.url, username = "store.server", password = "server123" })
local function this_client()
  local t0 = core.now()
  for _ = 1, N do assert(client:v2_customer_lookup(QUERY)) end
  return N / (core.now() - t0)
end

local function lua_socket()
  local t0 = core.now()
  for _ = 1, N do
    local sink = {}
    local ok, status = http.request { url = url, headers = { Authorization = BASIC, Accept = "application/json" },
                                      sink = ltn12.sink.table(sink) }
    assert(ok and status == 200, "lua-socket call failed")
  end
  return N / (core.now() - t0)
end

local ok, err = pcall(function()
  this_client() -- warm up the sandbox and the connection
  local best = { c = 0, client = 0, socket = 0 }
  for _ = 1, ROUNDS do
    best.c = math.max(best.c, c_loop())
    best.client = math.max(best.client, this_client())
    best.socket = math.max(best.socket, lua_socket())
  end
  print(string.format("client bench (%s, %d sequential calls, best of %d rounds, GET /v2/customers/lookup)",
                      type(jit) == "table" and jit.version or _VERSION, N, ROUNDS))
  print(string.format("  plain C libcurl loop  %9.0f calls/s", best.c))
  print(string.format("  lua-loyalty client    %9.0f calls/s   %.2fx the C loop (target >= 0.90)",
                      best.client, best.client / best.c))
  print(string.format("  lua-socket http       %9.0f calls/s   client is %.1fx lua-socket (target >= 3)",
                      best.socket, best.client / best.socket))
end)
client:close()
sb:stop()
assert(ok, err)

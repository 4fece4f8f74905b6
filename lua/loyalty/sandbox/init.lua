-- Shared by both CRMs: starts the sandbox (Capillary v1.1/v2/OAuth and CRM.COM in one private
-- nginx) and talks to its /sandbox/ knobs, the generic ones and each CRM's. Runs in plain Lua (5.4 or
-- LuaJIT), not inside nginx; the server side is loyalty.sandbox.server (the dispatcher).
local runner = require("loyalty.ngx.runner")

local _M = {}

_M.DEFAULT_PORT = 8089

-- [INF] Bodies beyond client_max_body_size: HTTP 413 with the provider's envelope.
_M.MAX_BODY = "4m"

-- The seed shipped with the checkout or the lua-loyalty-sandbox rock: path, or nil, message.
local function default_seed_path()
  return require("loyalty.paths").find("lua-loyalty-sandbox", "examples/sandbox-seed.json")
end
_M.default_seed_path = default_seed_path

local function cjson() return require("cjson.safe") end

-- Seed as JSON text: a path, a table, or nil for the default file.
local function seed_text(seed)
  if type(seed) == "table" then
    local s, err = cjson().encode(seed)
    if not s then return nil, "seed table cannot be encoded: " .. tostring(err) end
    return s
  end
  local path = seed
  if not path then
    local perr
    path, perr = default_seed_path()
    if not path then return nil, perr end
  end
  local text = runner.read_file(path)
  if not text then return nil, "cannot read the seed file " .. path .. ": pass seed = a file or table" end
  local decoded = cjson().decode(text)
  if type(decoded) ~= "table" then return nil, "seed file " .. path .. " is not a JSON object" end
  return text
end

--- The http{} body for loyalty.ngx.runner. seed_file: path of the seed JSON; latency_ms: starting latency;
-- tls: {cert, key} (PEM paths) adds the same API over TLS on the next port.
function _M.http_config(seed_file, latency_ms, tls, crmcom_release)
  return table.concat({
    "lua_shared_dict sandbox_state 64m;",
    "lua_shared_dict sandbox_counters 4m;",
    "init_by_lua_block {",
    "  local f = assert(io.open(" .. string.format("%q", seed_file) .. ", 'rb'))",
    "  local raw = f:read('*a') f:close()",
    "  require('loyalty.sandbox.server').init(raw, " .. tostring(tonumber(latency_ms) or 0) .. ", {",
    "    max_body = " .. string.format("%q", _M.MAX_BODY) .. ",",
    "    crmcom_release = " .. string.format("%q", crmcom_release or "") .. ",",
    "  })",
    "}",
    "init_worker_by_lua_block { math.randomseed(math.floor(ngx.now() * 1000) + ngx.worker.pid()) }",
    "keepalive_requests 100000;",
    "keepalive_timeout 75s;",
    "client_max_body_size " .. _M.MAX_BODY .. ";",
    "client_body_buffer_size " .. _M.MAX_BODY .. ";",
    "server {",
    "  listen 127.0.0.1:${port} backlog=4096;",
    tls and "  listen 127.0.0.1:${next_port} ssl backlog=4096;" or "",
    tls and ("  ssl_certificate " .. tls.cert .. ";") or "",
    tls and ("  ssl_certificate_key " .. tls.key .. ";") or "",
    "  server_tokens off;",
    "  error_page 413 = @too_large;",
    "  location / { content_by_lua_block { require('loyalty.sandbox.server').handle() } }",
    "  location @too_large { content_by_lua_block { require('loyalty.sandbox.server').too_large() } }",
    "}",
  }, "\n")
end

-- Minimal HTTP for the admin knobs (lua-socket).
local function admin_call(url, method, path, body)
  local http = require("socket.http")
  local ltn12 = require("ltn12")
  local out = {}
  local payload = body and cjson().encode(body) or (method == "POST" and "{}" or nil)
  local _, status = http.request {
    url = url .. path, method = method, sink = ltn12.sink.table(out),
    source = payload and ltn12.source.string(payload) or nil,
    headers = payload and { ["Content-Type"] = "application/json", ["Content-Length"] = #payload } or nil,
  }
  if type(status) ~= "number" then return nil, "sandbox admin call failed: " .. tostring(status) end
  local decoded = cjson().decode(table.concat(out))
  if status ~= 200 then
    return nil, "sandbox admin " .. path .. ": HTTP " .. status .. " " .. tostring(decoded and decoded.error)
  end
  return decoded
end

local Handle = {}
Handle.__index = Handle

function Handle:state() return admin_call(self.url, "GET", "/sandbox/state") end
function Handle:reset() return admin_call(self.url, "POST", "/sandbox/reset") end
function Handle:faults(spec) return admin_call(self.url, "POST", "/sandbox/faults", spec) end
function Handle:clear_faults() return admin_call(self.url, "DELETE", "/sandbox/faults") end
function Handle:latency(ms) return admin_call(self.url, "POST", "/sandbox/latency", { ms = ms }) end

-- CRM.COM's knobs (crmcom/admin.lua): wallets, events, products, logins and the synchronise
-- concurrency high-water mark.
function Handle:crmcom_state() return admin_call(self.url, "GET", "/sandbox/crmcom/state") end
function Handle:crmcom_expire_tokens() return admin_call(self.url, "POST", "/sandbox/crmcom/expire_tokens") end
function Handle:crmcom_reset_counters() return admin_call(self.url, "POST", "/sandbox/crmcom/reset_counters") end

-- Capillary's knobs (capillary/admin.lua).

--- Holds customer's write lock for ms milliseconds (the next write for it answers 521).
function Handle:hold(customer, ms)
  return admin_call(self.url, "POST", "/sandbox/hold", { customer = customer, ms = ms })
end

--- The live validation code of a customer: otp({mobile = "…"} [, scope]) or otp("mobile", "…" [, scope]).
function Handle:otp(a, b, c)
  local ident, scope
  if type(a) == "table" then ident, scope = a, b else ident, scope = { [a] = b }, c end
  local q = {}
  for k, v in pairs(ident) do q[#q + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(ch)
    return string.format("%%%02X", ch:byte())
  end) end
  q[#q + 1] = "scope=" .. (scope or "POINTS")
  local r, err = admin_call(self.url, "GET", "/sandbox/otp?" .. table.concat(q, "&"))
  if not r then return nil, err end
  return r.code, r
end

function Handle:stop()
  if self.stopped then return true end
  self.stopped = true
  self.server:stop()
  if self.seed_file then os.remove(self.seed_file) end
  return true
end
Handle.close = Handle.stop

function Handle:error_log() return self.server:error_log() end

local function wait_ready(url)
  local socket = require("socket")
  for _ = 1, 200 do
    local ok = admin_call(url, "GET", "/sandbox/state")
    if ok then return true end
    socket.sleep(0.02)
  end
  return false
end

local function write_seed(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

--- Starts the sandbox. opts: port (nil: a free one), latency_ms, seed (path or table; default
-- examples/sandbox-seed.json), workers (default 1), foreground (run until nginx exits; returns
-- true/false), tls = {cert, key} (also serve HTTPS on port + 1, as handle.tls_url), crmcom_release
-- (the CRM.COM release served, e.g. "R16"; default the seed's crmcom.release, else R17).
-- Returns a handle {url, tls_url, port, stop(), state(), reset(), faults(spec), otp(...)} or nil, err.
function _M.start(opts)
  opts = opts or {}
  local text, err = seed_text(opts.seed)
  if not text then return nil, err end
  if opts.crmcom_release ~= nil and not tostring(opts.crmcom_release):match("^[Rr]?%d+[%.%d]*$") then
    return nil, "crmcom_release must name a release such as R16 or R17.0.0"
  end
  local seed_file = write_seed(text)
  local server, serr, how = runner.start {
    http = _M.http_config(seed_file, opts.latency_ms, opts.tls, opts.crmcom_release), port = opts.port,
    workers = opts.workers or 1,
    foreground = opts.foreground, worker_connections = opts.worker_connections or 4096,
    error_log = opts.error_log,
  }
  if opts.foreground then
    os.remove(seed_file)
    return server, serr, how
  end
  if not server then
    os.remove(seed_file)
    return nil, serr
  end
  local handle = setmetatable({ url = server.url, port = server.port, server = server, seed_file = seed_file,
                                tls_url = opts.tls and ("https://127.0.0.1:" .. (server.port + 1)) or nil }, Handle)
  if not wait_ready(server.url) then
    local log = server:error_log()
    handle:stop()
    return nil, "sandbox did not become ready: " .. log
  end
  return handle
end

return _M

-- Shared by both CRMs: the sandbox's request dispatcher (runs inside nginx). Request id, request
-- counters, the /sandbox/ knobs, latency and injected faults, then the handler of the provider
-- whose paths these are (capillary/server.lua, crmcom/server.lua); an envelope for every failure,
-- internal bugs included.
-- luacheck: globals ngx (the handler writes ngx.status and ngx.header)
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local faults = require("loyalty.sandbox.faults")
local http = require("loyalty.sandbox.http")
local admin = require("loyalty.sandbox.admin")

local _M = {}

-- A provider's server module: owns(path), handle(path, method) -> status, body, raw, always,
-- error_reply(path, status, code, message), body_failure(path, code, message), init(settings),
-- reset(seed); optional enter(path)/leave(path) around the latency and a delay fault, knobs
-- {["METHOD /sandbox/..."] = fn(req)} and state() (fields of GET /sandbox/state).
local capillary = require("loyalty.sandbox.capillary.server")
local PROVIDERS = { capillary, require("loyalty.sandbox.crmcom.server") }

-- The settings init_by_lua passed (inherited by every worker): max_body, crmcom_release.
local settings = {}

-- Paths no provider owns are answered as Capillary v1.1 (the sandbox's first API).
local function provider_of(path)
  for _, p in ipairs(PROVIDERS) do
    if p.owns(path) then return p end
  end
  return capillary
end

-- The id of this request: every reply carries it under the header Capillary uses, and CRM.COM's
-- replies under X-Request-Id too (its clients read only that one).
local function stamp_request_id(fallback)
  local rid = ngx.var.request_id
  local id = rid and rid:sub(1, 13):upper() or fallback
  ngx.header["X-Cap-Requestid"] = id
  if (ngx.var.uri or ""):find("^/crmapi/") then ngx.header["X-Request-Id"] = id end
end

local function fail(provider, path, status, code, message)
  http.send(provider.error_reply(path, status, code, message))
end

-- Faults ---------------------------------------------------------------------------------------

-- Applies fault f (not a delay: taken before) to a request for provider; true when f answered.
local function apply_fault(f, provider, path)
  local action = f.action
  if action == "apply_drop" then return false end -- handled as usual, the reply dropped after
  if action == "ignore_args" then -- handled as if these query arguments were not sent
    local args = ngx.req.get_uri_args()
    for _, name in ipairs(f.args) do args[name] = nil end
    ngx.req.set_uri_args(args)
    return false
  end
  if action == "drop" then
    return ngx.exit(444)
  elseif action == "empty" then
    ngx.status = f.status or 200
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = 0
    return true
  elseif action == "malformed" then
    http.send(f.status or 200, nil, '{"response": {"status": {"success": "true", "code": 200, <html>oops')
    return true
  elseif action == "truncated" then
    local _, body = provider.error_reply(path, 200, 200, "Success")
    local full = json.encode(body) .. string.rep(" ", 64)
    ngx.status = f.status or 200
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #full
    ngx.print(full:sub(1, math.floor(#full / 2)))
    ngx.flush(true)
    return ngx.exit(444)
  elseif action == "body" then -- any text as the reply body (hostile shapes, numbers beyond a double)
    ngx.status = f.status or 200
    ngx.header["Content-Type"] = "application/json"
    ngx.print(f.body)
    return ngx.exit(ngx.status)
  elseif action == "body_failure" then
    http.send(provider.body_failure(path, f.code, f.message or "All requests have failed due to errors"))
    return true
  end
  -- A status fault: the provider's envelope, Retry-After when asked.
  if f.retry_after then ngx.header["Retry-After"] = tostring(f.retry_after) end
  fail(provider, path, f.status, f.code or f.status, f.message or ("Injected fault " .. f.status))
  return true
end

-- Dispatch -------------------------------------------------------------------------------------

local function knob(method, path)
  local fn = admin.route(method, path, PROVIDERS)
  if not fn then return http.send(404, { error = "no such sandbox endpoint: " .. method .. " " .. path }) end
  local body, err = http.decode_body(method)
  if err and path ~= "/sandbox/reset" and method ~= "DELETE" then return http.send(400, { error = err }) end
  return http.send(fn({ method = method, path = path, args = ngx.req.get_uri_args(), body = body }, PROVIDERS))
end

local function dispatch()
  stamp_request_id(tostring(ngx.now()))
  local path = ngx.var.uri
  local method = ngx.req.get_method()
  store.count_request(path)
  if path:sub(1, 9) == "/sandbox/" then return knob(method, path) end

  local provider = provider_of(path)
  if provider.enter then provider.enter(path) end
  local latency = store.latency_ms()
  if latency > 0 then ngx.sleep(latency / 1000) end
  local f = faults.take(path, method)
  if f and f.action == "delay" then
    ngx.sleep(f.ms / 1000)
    f = nil
  end
  if provider.leave then provider.leave(path) end
  if f and apply_fault(f, provider, path) then return end

  local status, body, raw, always = provider.handle(path, method)
  -- apply_drop: booked, and the reply never leaves (unless the provider says it is always sent).
  if f and f.action == "apply_drop" and not always then return ngx.exit(444) end
  return http.send(status, body, raw)
end

local function on_error(e)
  if type(e) == "table" then return e end
  return debug.traceback(tostring(e), 2)
end

--- content_by_lua entry point.
function _M.handle()
  local ok, err = xpcall(dispatch, on_error)
  if ok then return end
  local path = ngx.var.uri or "/"
  local provider = provider_of(path)
  -- A handler raises {sandbox_refusal = {http, code, message}} to answer in its provider's envelope.
  local refusal = type(err) == "table" and err.sandbox_refusal
  if refusal then
    if not ngx.headers_sent then return fail(provider, path, refusal.http, refusal.code, refusal.message) end
    return ngx.exit(ngx.ERROR)
  end
  ngx.log(ngx.ERR, "sandbox internal error: ", tostring(err))
  if ngx.headers_sent then return ngx.exit(ngx.ERROR) end
  fail(provider, path, 500, 500, "Internal sandbox error")
end

--- Bodies beyond client_max_body_size (error_page 413).
function _M.too_large()
  stamp_request_id("")
  local path = ngx.var.uri or "/"
  fail(provider_of(path), path, 413, 413, "Request body too large (max " .. tostring(settings.max_body) .. ")")
end

--- Called from init_by_lua with the seed JSON text, the starting latency and the settings
-- ({max_body = "4m", crmcom_release = "R16"}, each provider reads its own); loads the seed.
function _M.init(raw, latency_ms, with)
  settings = with or {}
  store.init(raw, latency_ms)
  for _, p in ipairs(PROVIDERS) do p.init(settings) end
  admin.reset(PROVIDERS)
end

return _M

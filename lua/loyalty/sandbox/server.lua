-- The sandbox request handler (runs inside nginx): request id, counters, latency, faults, auth,
-- luacheck: globals ngx (the handler writes ngx.status and ngx.header)
-- routing, and an envelope for every failure, internal bugs included.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local common = require("loyalty.sandbox.common")
local faults = require("loyalty.sandbox.faults")
local inferred = require("loyalty.sandbox.inferred")
local admin = require("loyalty.sandbox.admin")
local v11 = require("loyalty.sandbox.v11")
local v2 = require("loyalty.sandbox.v2")
local crmcom = require("loyalty.sandbox.crmcom.server")

local _M = {}

local LOCKED_MESSAGE = "Multiple actions are running for the same customer. Please try after some time."

local function generation(path)
  if path:sub(1, #crmcom.PREFIX) == crmcom.PREFIX then return "crmcom" end
  if path:sub(1, 6) == "/v1.1/" then return "v1.1" end
  if path:sub(1, 4) == "/v2/" then return "v2" end
  if path:sub(1, 4) == "/v3/" then return "v3" end
  return "v1.1"
end

local function send(status, body, raw)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  if raw then
    ngx.print(raw)
  elseif body ~= nil then
    ngx.print(json.encode(body))
  end
end

-- The error envelope of the API generation the path belongs to.
local function error_reply(gen, http, code, message)
  if gen == "crmcom" then return crmcom.error_reply(http, code, message) end
  if gen == "v1.1" then return common.v11_error(http, code, message) end
  if gen == "v3" then
    return http, { data = json.null, errors = json.array { { status = false, code = code, message = message } } }
  end
  return common.v2_error(http, code, message)
end

local function fail(gen, http, code, message)
  send(error_reply(gen, http, code, message))
end

local read_body = require("loyalty.ngx").request_body

-- Auth -----------------------------------------------------------------------------------------

local function resolve_attribution(cfg, h, default_till)
  local etype, ecode = h["x-cap-api-attribution-entity-type"], h["x-cap-api-attribution-entity-code"]
  local legacy = h["x-cap-api-attribution-till-code"]
  local att = { via = "header" }
  if ecode then
    etype = etype and tostring(etype):upper() or "TILL"
    att.entity_type, att.entity_code = etype, ecode
    if etype == "TILL" or etype == "TILL_CODE" then
      att.till = ecode
      att.store = cfg.tills[ecode] and cfg.tills[ecode].store_code
    else
      for code, s in pairs(cfg.stores) do
        if (etype == "STORE_CODE" and code == ecode) or (etype == "STORE_NAME" and s.name == ecode)
          or (etype:sub(1, 17) == "STORE_EXTERNAL_ID" and s.external_id == ecode) then
          att.store = code
        end
      end
    end
    att.known = att.store ~= nil
  elseif legacy then
    att.entity_type, att.entity_code, att.till = "TILL", legacy, legacy
    att.store = cfg.tills[legacy] and cfg.tills[legacy].store_code
    att.known = att.store ~= nil
  else
    att.via, att.till = "default", default_till
    att.store = cfg.tills[default_till or ""] and cfg.tills[default_till].store_code
    att.known = true
  end
  return att
end

-- Returns auth, attribution or nil.
local function authenticate(cfg, h)
  local authz = h["authorization"]
  if type(authz) == "table" then authz = authz[1] end
  local token = h["x-cap-api-oauth-token"] or h["cap-api-access-token"]
  if not token and authz and authz:sub(1, 7):lower() == "bearer " then token = authz:sub(8) end
  if token then
    local t = store.get_json("tok:" .. tostring(token))
    if not t then return nil end
    return { scheme = "oauth", client = t.client }, resolve_attribution(cfg, h, t.till)
  end
  if authz and authz:sub(1, 6):lower() == "basic " then
    local decoded = ngx.decode_base64(authz:sub(7))
    local user, secret = (decoded or ""):match("^([^:]*):(.*)$")
    local till = user and cfg.tills[user]
    if till and secret:lower() == till.secret_md5 then
      return { scheme = "basic", till = user },
        { via = "credentials", till = user, store = till.store_code, known = true }
    end
  end
  return nil
end

local function b64url(s)
  return (ngx.encode_base64(s):gsub("+", "-"):gsub("/", "_"):gsub("=+$", ""))
end

local function token_generate(cfg, body)
  local client = type(body) == "table" and cfg.clients[tostring(body.key or "")]
  if not client or tostring(body.secret or "") ~= client.secret then
    local e = inferred.OAUTH_FAILURE
    return error_reply("v3", e.http, e.code, e.message)
  end
  local now = ngx.time()
  local ttl = client.ttl_seconds or 60
  local n = store.next_seq("token")
  local token = b64url(json.encode({ kid = "k1", alg = inferred.TOKEN_ALG })) .. "." ..
    b64url(json.encode({ iss = "CapillarySandbox", iat = now, exp = now + ttl, sub = client.key,
      client_key = client.key, default_till = client.default_till, org_id = cfg.org.id,
      token_use = "token_access", jti = tostring(n) })) .. "." ..
    b64url(ngx.md5_bin(n .. ":" .. ngx.now() .. ":" .. math.random()))
  store.set_json("tok:" .. token, { client = client.key, till = client.default_till }, ttl)
  return 200, { data = { accessToken = token, ttlSeconds = ttl }, errors = json.null }
end

-- Faults ---------------------------------------------------------------------------------------

local function apply_fault(f, gen)
  local action = f.action
  if action == "apply_drop" then return false end -- applied by the handler, the reply dropped after
  if action == "ignore_args" then -- handled as if these query arguments were not sent
    local args = ngx.req.get_uri_args()
    for _, name in ipairs(f.args) do args[name] = nil end
    ngx.req.set_uri_args(args)
    return false
  end
  if action == "delay" then
    ngx.sleep(f.ms / 1000)
    return false
  elseif action == "drop" then
    return ngx.exit(444)
  elseif action == "empty" then
    ngx.status = f.status or 200
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = 0
    return true
  elseif action == "malformed" then
    send(f.status or 200, nil, '{"response": {"status": {"success": "true", "code": 200, <html>oops')
    return true
  elseif action == "truncated" then
    local _, body = error_reply(gen, 200, 200, "Success")
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
    local code = f.code or 500
    local message = f.message or "All requests have failed due to errors"
    if gen == "v1.1" then
      send(200, { response = { status = common.v11_status(false, code, message) } })
    elseif gen == "crmcom" then
      send(crmcom.error_reply(200, f.code or "ERROR", message))
    else
      send(200, { errors = json.array { { status = false, code = code, message = message } },
        warnings = json.array {} })
    end
    return true
  end
  -- A status fault: the envelope of the generation, Retry-After when asked.
  if f.retry_after then ngx.header["Retry-After"] = tostring(f.retry_after) end
  fail(gen, f.status, f.code or f.status, f.message or ("Injected fault " .. f.status))
  return true
end

-- Dispatch -------------------------------------------------------------------------------------

local function decode_body(method)
  if method ~= "POST" and method ~= "PUT" then return nil end
  local raw = read_body()
  if raw == nil or raw == "" then return nil, "request body is required" end
  local body, err = json.decode(raw)
  if body == nil then return nil, "invalid JSON: " .. tostring(err) end
  if type(body) ~= "table" then return nil, "JSON object expected" end
  return body
end

local function bad_request(gen, message)
  if gen == "v1.1" then
    local e = inferred.V11_BAD_REQUEST
    return fail(gen, e.http, e.code, e.message .. ": " .. message)
  end
  return fail(gen, 400, 400, "Invalid input: " .. message)
end

local function dispatch()
  local rid = ngx.var.request_id
  ngx.header["X-Cap-Requestid"] = rid and rid:sub(1, 13):upper() or tostring(ngx.now())
  if ngx.var.uri:find("^/crmapi/") then ngx.header["X-Request-Id"] = ngx.header["X-Cap-Requestid"] end -- CRM.COM's
  local path = ngx.var.uri
  local method = ngx.req.get_method()
  store.count_request(path)

  if path:sub(1, 9) == "/sandbox/" then
    local fn = admin.route(method, path) or crmcom.knob(method, path)
    if not fn then return send(404, { error = "no such sandbox endpoint: " .. method .. " " .. path }) end
    local body, err = decode_body(method)
    if err and path ~= "/sandbox/reset" and method ~= "DELETE" then return send(400, { error = err }) end
    local status, reply = fn({ method = method, path = path, args = ngx.req.get_uri_args(), body = body })
    if path == "/sandbox/reset" then crmcom.reset() end
    return send(status, reply)
  end
  if path:sub(1, #crmcom.PREFIX) == crmcom.PREFIX then
    return crmcom.handle { send = send, apply_fault = apply_fault, read_body = read_body }
  end

  local latency = store.latency_ms()
  if latency > 0 then ngx.sleep(latency / 1000) end

  local gen = generation(path)
  local f = faults.take(path, method)
  if f and apply_fault(f, gen) then return end
  local drop_reply = f and f.action == "apply_drop"

  local cfg = store.config()
  local route, path_id
  if gen == "v1.1" then
    route = v11.routes[path]
  elseif gen == "v2" then
    route = v2.routes[path]
    if not route then
      path_id = path:match("^/v2/customers/(%d+)$")
      if path_id then
        local fn = v2.customer_id_routes[method]
        route = { fn and method or "GET/PUT", fn }
      end
    end
  elseif path == "/v3/oauth/token/generate" then
    if method ~= "POST" then return fail("v3", 405, 405, "Incorrect HTTP method") end
    local body, err = decode_body(method)
    if err then return fail("v3", 400, 400, "Invalid input: " .. err) end
    return send(token_generate(cfg, body))
  end
  if not route then return fail(gen, 404, 404, "Incorrect resource") end
  if route[1] ~= method then return fail(gen, 405, 405, "Incorrect HTTP method") end

  local auth, attribution = authenticate(cfg, ngx.req.get_headers())
  if not auth then return fail(gen, 401, 401, inferred.AUTH_FAILURE_MESSAGE) end

  local body, err = decode_body(method)
  if err then return bad_request(gen, err) end
  local req = { method = method, path = path, path_id = path_id, args = ngx.req.get_uri_args(), body = body,
    cfg = cfg, auth = auth, attribution = attribution, gen = gen }
  local status, reply = route[2](req)
  if drop_reply then return ngx.exit(444) end -- booked, and the reply never leaves
  return send(status, reply)
end

local function on_error(e)
  if type(e) == "table" then return e end
  return debug.traceback(tostring(e), 2)
end

--- content_by_lua entry point.
function _M.handle()
  local ok, err = xpcall(dispatch, on_error)
  if ok then return end
  local gen = generation(ngx.var.uri or "/")
  if type(err) == "table" and err.sandbox_locked then
    local status, body = error_reply(gen, 521, 521, LOCKED_MESSAGE)
    if not ngx.headers_sent then return send(status, body) end
    return ngx.exit(ngx.ERROR)
  end
  ngx.log(ngx.ERR, "sandbox internal error: ", tostring(err))
  if ngx.headers_sent then return ngx.exit(ngx.ERROR) end
  fail(gen, 500, 500, "Internal sandbox error")
end

--- Bodies beyond client_max_body_size (error_page 413).
function _M.too_large()
  local rid = ngx.var.request_id
  ngx.header["X-Cap-Requestid"] = rid and rid:sub(1, 13):upper() or ""
  if (ngx.var.uri or ""):find("^/crmapi/") then ngx.header["X-Request-Id"] = ngx.header["X-Cap-Requestid"] end
  fail(generation(ngx.var.uri or "/"), 413, 413, "Request body too large (max " .. inferred.MAX_BODY .. ")")
end

return _M

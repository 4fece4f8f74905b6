-- The Capillary sandbox's handler (v1.1, v2 and the v3 OAuth token), called by the shared
-- dispatcher (loyalty.sandbox.server): its routes, authentication (OAuth tokens, till Basic
-- credentials, attribution headers) and the error envelope of each API generation.
local json = require("loyalty.sandbox.json")
local http = require("loyalty.sandbox.http")
local cstore = require("loyalty.sandbox.capillary.store")
local common = require("loyalty.sandbox.capillary.common")
local inferred = require("loyalty.sandbox.capillary.inferred")
local admin = require("loyalty.sandbox.capillary.admin")
local v11 = require("loyalty.sandbox.capillary.v11")
local v2 = require("loyalty.sandbox.capillary.v2")

local _M = {}

local TOKEN_PATH = "/v3/oauth/token/generate"

local function generation(path)
  if path:sub(1, 6) == "/v1.1/" then return "v1.1" end
  if path:sub(1, 4) == "/v2/" then return "v2" end
  if path:sub(1, 4) == "/v3/" then return "v3" end
  return "v1.1"
end

function _M.owns(path)
  return path:sub(1, 6) == "/v1.1/" or path:sub(1, 4) == "/v2/" or path:sub(1, 4) == "/v3/"
end

local function envelope(gen, status, code, message)
  if gen == "v1.1" then return common.v11_error(status, code, message) end
  if gen == "v3" then
    return status, { data = json.null, errors = json.array { { status = false, code = code, message = message } } }
  end
  return common.v2_error(status, code, message)
end

--- The error envelope of the API generation path belongs to: http status, body.
function _M.error_reply(path, status, code, message)
  return envelope(generation(path), status, code, message)
end

--- A failure inside a 200 reply (the body_failure fault).
function _M.body_failure(path, code, message)
  code = code or 500
  if generation(path) == "v1.1" then
    return 200, { response = { status = common.v11_status(false, code, message) } }
  end
  return 200, { errors = json.array { { status = false, code = code, message = message } }, warnings = json.array {} }
end

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
  local authz = http.authorization(h)
  local token = h["x-cap-api-oauth-token"] or h["cap-api-access-token"]
  if not token and authz and authz:sub(1, 7):lower() == "bearer " then token = authz:sub(8) end
  if token then
    local t = cstore.token(token)
    if not t then return nil end
    return { scheme = "oauth", client = t.client }, resolve_attribution(cfg, h, t.till)
  end
  local user, secret = (http.basic_credentials(h) or ""):match("^([^:]*):(.*)$")
  local till = user and cfg.tills[user]
  if till and secret:lower() == till.secret_md5 then
    return { scheme = "basic", till = user },
      { via = "credentials", till = user, store = till.store_code, known = true }
  end
  return nil
end

local function token_generate(cfg, body)
  local client = type(body) == "table" and cfg.clients[tostring(body.key or "")]
  if not client or tostring(body.secret or "") ~= client.secret then
    local e = inferred.OAUTH_FAILURE
    return envelope("v3", e.http, e.code, e.message)
  end
  local now = ngx.time()
  local ttl = client.ttl_seconds or 60
  local n = cstore.new_token_number()
  local token = http.opaque_jwt({ kid = "k1", alg = inferred.TOKEN_ALG },
    { iss = "CapillarySandbox", iat = now, exp = now + ttl, sub = client.key,
      client_key = client.key, default_till = client.default_till, org_id = cfg.org.id,
      token_use = "token_access", jti = tostring(n) }, n)
  cstore.put_token(token, { client = client.key, till = client.default_till }, ttl)
  return 200, { data = { accessToken = token, ttlSeconds = ttl }, errors = json.null }
end

-- Dispatch -------------------------------------------------------------------------------------

-- A reply sent even under the apply_drop fault (which drops what a route's handler answers).
local function answered(status, body) return status, body, nil, true end

local function bad_request(gen, message)
  if gen == "v1.1" then
    local e = inferred.V11_BAD_REQUEST
    return envelope(gen, e.http, e.code, e.message .. ": " .. message)
  end
  return envelope(gen, 400, 400, "Invalid input: " .. message)
end

--- Handles one Capillary request: status, body, nil, always (true: sent even under apply_drop,
-- as the route, method, auth and body checks and the token endpoint are).
function _M.handle(path, method)
  local gen = generation(path)
  local cfg = cstore.config()
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
  elseif path == TOKEN_PATH then
    if method ~= "POST" then return answered(envelope("v3", 405, 405, "Incorrect HTTP method")) end
    local body, err = http.decode_body(method)
    if err then return answered(envelope("v3", 400, 400, "Invalid input: " .. err)) end
    return answered(token_generate(cfg, body))
  end
  if not route then return answered(envelope(gen, 404, 404, "Incorrect resource")) end
  if route[1] ~= method then return answered(envelope(gen, 405, 405, "Incorrect HTTP method")) end

  local auth, attribution = authenticate(cfg, ngx.req.get_headers())
  if not auth then return answered(envelope(gen, 401, 401, inferred.AUTH_FAILURE_MESSAGE)) end

  local body, err = http.decode_body(method)
  if err then return answered(bad_request(gen, err)) end
  local req = { method = method, path = path, path_id = path_id, args = ngx.req.get_uri_args(), body = body,
    cfg = cfg, auth = auth, attribution = attribution, gen = gen }
  return route[2](req)
end

function _M.init() end
_M.reset = cstore.reset
_M.knobs, _M.state = admin.KNOBS, admin.state

return _M

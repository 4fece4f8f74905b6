-- The CRM.COM sandbox's handler (the legacy Web API, `/crmapi/rest/v2/...`), called by the shared
-- dispatcher (loyalty.sandbox.server): its routes (the methods in methods.lua, by name, and the
-- release's HTTP verbs), login and tokens, the envelope (common.lua). Its knobs are crmcom/admin.lua.
local json = require("loyalty.sandbox.json")
local http = require("loyalty.sandbox.http")
local store = require("loyalty.sandbox.store")
local admin = require("loyalty.sandbox.crmcom.admin")
local cstore = require("loyalty.sandbox.crmcom.store")
local common = require("loyalty.sandbox.crmcom.common")
local methods = require("loyalty.sandbox.crmcom.methods")
local inferred = require("loyalty.sandbox.crmcom.inferred")

local _M = {}
local PREFIX = "/crmapi/rest/v2/"
local C = inferred.CODES
local ROUTES = methods.ROUTES
local envelope, ok, err, release = common.envelope, common.ok, common.err, common.release

function _M.owns(path) return path:sub(1, #PREFIX) == PREFIX end

--- http status, body of a failure (the dispatcher's faults and internal errors too).
function _M.error_reply(_, status, code, message)
  return status, envelope(tostring(code), message)
end

--- A failure inside a 200 reply (the body_failure fault).
function _M.body_failure(_, code, message)
  return 200, envelope(tostring(code or "ERROR"), message)
end

local function issue_token(user, org, unit, ttl)
  local now = ngx.time()
  local n = store.next_seq("crmjti")
  local token = http.opaque_jwt({ typ = "JWT", alg = "HS256" },
    { jti = tostring(n), usr = user, org = org, oun = unit or json.null, iat = now, exp = now + ttl }, n)
  cstore.put_token(token, { usr = user, org = org, unit = unit, exp = now + ttl }, ttl)
  return ok { token = token }
end

local function login(cfg, p)
  local u = cfg.users[tostring(p.username or "")]
  if not u or tostring(p.password or "") ~= u.password or p.organisation ~= cfg.organisation then
    return err(C.login_failed, "Invalid username, password or organisation")
  end
  local unit = p.unit or u.unit
  if unit and not cfg.units[unit] then return err(C.invalid, "Unknown unit " .. tostring(unit)) end
  return issue_token(u.username, cfg.organisation, unit, u.token_ttl_seconds or inferred.TOKEN_TTL_SECONDS)
end

local function key_login(cfg, p, headers)
  local decoded = http.basic_credentials(headers)
  local key = decoded and (decoded:match("^([^:]*):?$"))
  local k = key and cfg.keys[key]
  if not k then return err(C.login_failed, "Invalid Web API key") end
  local unit = p.unit or k.unit
  if unit and not cfg.units[unit] then return err(C.invalid, "Unknown unit " .. tostring(unit)) end
  local ttl = k.token_ttl_seconds or inferred.TOKEN_TTL_SECONDS
  return issue_token("webapi:" .. key:sub(1, 4), cfg.organisation, unit, ttl)
end

local function decode(raw)
  if raw == nil or raw == "" then return nil, "request body is required" end
  local body, derr = json.decode(raw)
  if type(body) ~= "table" then return nil, "JSON object expected" .. (derr and (": " .. derr) or "") end
  return body
end

local function route(cfg, name, method)
  local headers = ngx.req.get_headers()
  local params
  if method == "GET" then
    params = ngx.req.get_uri_args()
  else
    local e
    params, e = decode(http.read_body())
    if not params then return err(C.invalid, e) end
  end
  if name == "authentication/token" and method == "POST" then return login(cfg, params) end
  if name == "authentication/web_api_key/token" and method == "POST" then return key_login(cfg, params, headers) end
  local r = ROUTES[name]
  if name ~= "authentication/token/release" and not r then
    return inferred.UNKNOWN_METHOD_HTTP, envelope(C.unknown_method, "No such Web API method: " .. name)
  end
  local allowed = r and r[method]
  if name == "rewards_participants/show" then
    allowed = (release(cfg) >= 5) == (method == "POST") -- GET was R4; POST from R5
  end
  if name ~= "authentication/token/release" and not allowed then
    return inferred.WRONG_METHOD_HTTP, envelope(C.wrong_method, method .. " " .. name .. " is not available on R"
                                                .. release(cfg))
  end
  local session = cstore.session(params.token)
  if not session then return err(C.invalid_token, "The token is invalid or has expired") end
  if name == "authentication/token/release" then
    cstore.release(params.token)
    return ok(json.null)
  end
  return r[1](cfg, params, session)
end

local function method_of(path) return path:sub(#PREFIX + 1) end

-- Calls in flight per method, around the latency and a delay fault (max_in_flight_sync).
function _M.enter(path) cstore.enter(method_of(path)) end
function _M.leave(path) cstore.leave(method_of(path)) end

--- Handles one /crmapi/rest/v2/ request: status, body, raw, always (true: sent even under
-- apply_drop, as the answer to a seed without a crmcom section is).
function _M.handle(path, method)
  local cfg = cstore.config()
  if not cfg then
    local status, body = err(C.unknown_method, "the sandbox seed has no crmcom section")
    return status, body, nil, true
  end
  return route(cfg, method_of(path), method)
end

_M.init, _M.reset = cstore.init, cstore.reset
_M.knobs = admin.KNOBS

return _M

-- Shared by both CRMs: what every provider's handler does with the request and the reply the
-- same way (JSON replies, the request body, Basic credentials, the opaque JWT-shaped tokens).
local json = require("loyalty.sandbox.json")

local _M = {}

--- Replies status with body (a table, encoded) or raw (text already encoded).
function _M.send(status, body, raw)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  if raw then
    ngx.print(raw)
  elseif body ~= nil then
    ngx.print(json.encode(body))
  end
end

_M.read_body = require("loyalty.ngx").request_body

--- The decoded JSON object of a POST or PUT (nil for other methods), or nil, message.
function _M.decode_body(method)
  if method ~= "POST" and method ~= "PUT" then return nil end
  local raw = _M.read_body()
  if raw == nil or raw == "" then return nil, "request body is required" end
  local body, err = json.decode(raw)
  if body == nil then return nil, "invalid JSON: " .. tostring(err) end
  if type(body) ~= "table" then return nil, "JSON object expected" end
  return body
end

--- The Authorization header (the first when sent twice).
function _M.authorization(headers)
  local authz = headers["authorization"]
  if type(authz) == "table" then authz = authz[1] end
  return authz
end

--- The decoded `user:secret` text of Basic credentials, or nil.
function _M.basic_credentials(headers)
  local authz = _M.authorization(headers)
  if not authz or authz:sub(1, 6):lower() ~= "basic " then return nil end
  return ngx.decode_base64(authz:sub(7))
end

local function b64url(s)
  return (ngx.encode_base64(s):gsub("+", "-"):gsub("/", "_"):gsub("=+$", ""))
end

--- A token shaped like a JWT (header.claims.signature) that is not signed: clients must treat it
-- as opaque. n (a sequence number) keeps two tokens of the same second apart.
function _M.opaque_jwt(header, claims, n)
  return b64url(json.encode(header)) .. "." .. b64url(json.encode(claims)) .. "." ..
    b64url(ngx.md5_bin(n .. ":" .. ngx.now() .. ":" .. math.random()))
end

return _M

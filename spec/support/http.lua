-- A tiny HTTP client for specs (lua-socket), independent of the project's own client.
local socket_http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson.safe")

local _M = {}

socket_http.TIMEOUT = 10

-- Documented constant: store.server / md5("server123") [capillary.md §2.1].
_M.BASIC = "Basic c3RvcmUuc2VydmVyOjhhMTZhNmI3MDUwNWViMWYxZmY3Y2RjMGNkNTU1OWE3"

--- Basic header for any till: base64(user ":" md5hex(password)), via openssl (no md5 in Lua).
function _M.basic(user, password)
  local function run(cmd)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return (out:gsub("%s+$", ""))
  end
  local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  local md5 = run("printf %s " .. quote(password) .. " | openssl md5 -r | cut -d' ' -f1")
  return "Basic " .. run("printf %s " .. quote(user .. ":" .. md5) .. " | base64 -w0")
end

--- request{method, url, headers, body | json} → {status, headers (lowercase names), body, json} or nil, err.
function _M.request(opts)
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local body = opts.body
  if opts.json ~= nil then
    body = assert(cjson.encode(opts.json))
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  end
  if body then headers["Content-Length"] = tostring(#body) end
  local out = {}
  local ok, status, rheaders = socket_http.request {
    url = opts.url, method = opts.method or (body and "POST" or "GET"), headers = headers,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(out),
  }
  if not ok then return nil, status end
  local lower = {}
  for k, v in pairs(rheaders or {}) do lower[k:lower()] = v end
  local text = table.concat(out)
  return { status = status, headers = lower, body = text, json = cjson.decode(text) }
end

function _M.get(url, headers)
  return _M.request { method = "GET", url = url, headers = headers }
end

function _M.post(url, json, headers)
  return _M.request { method = "POST", url = url, json = json, headers = headers }
end

function _M.put(url, json, headers)
  return _M.request { method = "PUT", url = url, json = json, headers = headers }
end

return _M

-- Transport through nginx's own upstream: ngx.location.capture to an internal location (see
-- examples/openresty/loyalty_proxy.conf) that proxy_passes with keepalive and TLS verification.
-- Non-blocking; only in rewrite/access/content phases (capture is disabled in timers).
local ngx_conf = require "loyalty.ngx"
local transport = require "loyalty.transport"

local failure = transport.error

local _M = {}

local Transport = {}
Transport.__index = Transport

local METHODS = {
  GET = ngx.HTTP_GET, POST = ngx.HTTP_POST, PUT = ngx.HTTP_PUT, DELETE = ngx.HTTP_DELETE,
  PATCH = ngx.HTTP_PATCH, HEAD = ngx.HTTP_HEAD, OPTIONS = ngx.HTTP_OPTIONS,
}

--- new(client_opts) -> transport. TLS and timeouts come from the proxy location's directives,
-- not from client options (nginx fixes them per location).
function _M.new(opts)
  opts = opts or {}
  local settings = ngx_conf.settings()
  return setmetatable({
    location = opts.proxy_location or settings.proxy_location,
    upstreams = settings.proxy_upstreams,
  }, Transport)
end

-- "https://Host:8443/a?b" -> origin "https://host:8443", scheme, authority, host, rest
local function split_url(url)
  local scheme, authority, rest = url:match("^(https?)://([^/?#]+)(.*)$")
  if not scheme then return nil end
  if rest == "" or rest:sub(1, 1) == "?" then rest = "/" .. rest end
  local host = authority:match("^%[[^%]]+%]") or authority:match("^[^:]+")
  return ngx_conf.normalise_origin(scheme .. "://" .. authority), scheme, authority, host, rest
end

local function lowercase_headers(h)
  local out = {}
  for name, value in pairs(h) do
    if type(value) == "table" then value = table.concat(value, ", ") end
    out[name:lower()] = value
  end
  return out
end

--- req {method, url, headers = {"Name: value"...}, body} -> res {status, headers, body}
--  | nil, err (loyalty.errors: kind network, timeout or config)
function Transport:send(req)
  local method = METHODS[req.method]
  if not method then return nil, failure("config", "unsupported method " .. tostring(req.method)) end
  local origin, scheme, authority, host, rest = split_url(req.url)
  if not scheme then return nil, failure("config", "not an http(s) URL") end
  local upstream = origin and self.upstreams[origin]
  local ctx = {
    loyalty_proxy = {
      url = scheme .. "://" .. (upstream or authority) .. rest,
      host = authority, sni = host, headers = req.headers,
    },
  }
  -- Always give a body to POST/PUT: otherwise capture forwards the storefront's own body.
  local body = req.body
  if not body and (method == ngx.HTTP_POST or method == ngx.HTTP_PUT or method == ngx.HTTP_PATCH) then
    body = ""
  end
  -- nginx fixes the location's timeouts, so the client's attempts would each wait the whole
  -- proxy_read_timeout: after one upstream timeout in this storefront request, later attempts
  -- and calls in the same request fail at once (one CRM wait per request, not one per attempt).
  local rctx = ngx.ctx
  if rctx.loyalty_proxy_timed_out then
    return nil, failure("timeout", "CRM timed out earlier in this request (nginx upstream); not waiting again")
  end
  local ok, res = pcall(ngx.location.capture, self.location, { method = method, body = body, ctx = ctx })
  if not ok then
    return nil, failure("config", "proxy transport unavailable here: " .. tostring(res))
  end
  if not ctx.prepared then
    return nil, failure("config", "proxy location " .. self.location ..
      " is missing: include loyalty_proxy.conf in the server block")
  end
  -- When nginx itself fails the upstream (connect, TLS, timeout), capture reports the
  -- subrequest as truncated with nginx's 502/504; a CRM's own 502 arrives whole.
  if res.truncated then
    if res.status == ngx.HTTP_GATEWAY_TIMEOUT then
      rctx.loyalty_proxy_timed_out = true
      return nil, failure("timeout", "CRM timed out (nginx upstream)")
    elseif res.status >= 500 then
      return nil, failure("network", "CRM unreachable through nginx (connect, TLS or protocol " ..
        "error; see the nginx error log)")
    end
    return nil, failure("network", "CRM reply truncated (HTTP " .. res.status .. ")")
  end
  return { status = res.status, headers = lowercase_headers(res.header or {}), body = res.body or "" }
end

--- reqs as subrequests on up to max_in_flight light threads -> out[i] = res | { err = err }
function Transport:send_many(reqs, max_in_flight)
  return require("loyalty.ngx.transport").send_concurrently(self, reqs, max_in_flight)
end

function Transport.close() end

--- Runs in the internal location's rewrite phase: point proxy_pass at the target and replace the
-- inherited storefront request headers (cookies etc.) with the CRM request's own.
function _M.prepare()
  local ctx = ngx.ctx
  local r = ctx.loyalty_proxy
  if not r then return ngx.exit(ngx.HTTP_NOT_FOUND) end
  ctx.prepared = true
  ngx.var.loyalty_url = r.url
  ngx.var.loyalty_host = r.host
  ngx.var.loyalty_sni = r.sni
  for name in pairs(ngx.req.get_headers(0, true)) do
    local lower = name:lower()
    -- nginx derives these from the capture body; keep them
    if lower ~= "content-length" and lower ~= "transfer-encoding" then ngx.req.clear_header(name) end
  end
  for _, line in ipairs(r.headers or {}) do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name and name:lower() ~= "host" and name:lower() ~= "content-length" then
      ngx.req.set_header(name, value)
    end
  end
end

return _M

-- The nginx transports under loyalty.client, inside a real nginx, against the sandbox and
-- against an echo location that shows what reached the "CRM".
local runner = require "loyalty.nginx_runner"
local http = require "support.http"
local sandbox = require "support.sandbox"
local support = require "nginx.support"

-- The proxy include with a short read timeout, so the timeout case stays quick.
local function proxy_conf(prefix_file)
  local text = assert(runner.read_file(support.root .. "/examples/openresty/loyalty_proxy.conf"))
  text = text:gsub("proxy_read_timeout 10s;", "proxy_read_timeout 1s;")
  local f = assert(io.open(prefix_file, "wb"))
  f:write(text)
  f:close()
  return prefix_file
end

local HTTP = [[
lua_shared_dict loyalty_tokens 1m;
init_by_lua_block { require("loyalty.ngx").configure { transport = "proxy" } }
server {
  listen 127.0.0.1:${port};
  include PROXY_CONF;

  # GET /call?via=proxy|thread|ngx&base=<url>&path=<path>[&method=POST][&timer=1]: one client call
  location = /call { content_by_lua_block {
    local cjson = require "cjson.safe"
    local a = ngx.req.get_uri_args()
    local topts = { timeout_ms = 800 }
    local transport = require("loyalty.transport." .. (a.via == "ngx" and "ngx" or "ngx_" .. a.via)).new(topts)
    local function call()
      local client = assert(require("loyalty.client").new {
        base_url = a.base, username = "store.server", password = "server123", transport = transport,
        max_attempts = 1, timeout_ms = 800,
      })
      local r, err = client:request { method = a.method or "GET", path = a.path,
        query = { mobile = a.mobile }, json = a.method == "POST" and { root = { probe = "x" } } or nil }
      if not r then
        return { error = { kind = err.kind, status = err.status, message = err.message } }
      end
      return { status = r.status, body = r.body }
    end
    local out
    if a.timer then
      local done = false
      ngx.timer.at(0, function() out = call() out.phase = "timer" done = true end)
      for _ = 1, 200 do
        if done then break end
        ngx.sleep(0.02)
      end
    else
      out = call()
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(out))
  } }

  # a "CRM" that answers with what it received
  location /echo/ { content_by_lua_block {
    ngx.req.read_body()
    local cjson = require "cjson.safe"
    local h = {}
    for k, v in pairs(ngx.req.get_headers()) do h[k] = v end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode { response = { status = { success = true, code = 200, message = "ok" },
      method = ngx.req.get_method(), uri = ngx.var.request_uri, headers = h,
      body = ngx.req.get_body_data() or "" } })
  } }
}
]]

local function esc(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

describe("nginx transports", function()
  local sb, srv, conf

  lazy_setup(function()
    sb = sandbox.start()
    conf = os.tmpname()
    local err
    srv, err = runner.start {
      main = "thread_pool loyalty threads=4;",
      http = HTTP:gsub("PROXY_CONF", proxy_conf(conf)),
    }
    assert(srv, err)
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
    if conf then os.remove(conf) end
  end)

  local function call(args, headers)
    local q = {}
    for k, v in pairs(args) do q[#q + 1] = k .. "=" .. esc(v) end
    local r = assert(http.get(srv.url .. "/call?" .. table.concat(q, "&"), headers))
    assert.equal(200, r.status)
    return r.json
  end

  for _, via in ipairs { "proxy", "thread", "ngx" } do
    describe(via, function()
      it("fetches a customer from the sandbox", function()
        local out = call { via = via, base = sb.url, path = "/v1.1/customer/get", mobile = sandbox.TOM.mobile }
        assert.is_nil(out.error)
        assert.equal(200, out.status)
        assert.truthy(out.body.customers or out.body.customer or next(out.body))
      end)

      it("sends only the CRM request's headers and body, not the storefront's", function()
        local out = call({ via = via, base = srv.url, path = "/echo/x", method = "POST" },
                         { Cookie = "session=shopper-secret", ["X-Shop"] = "inner" })
        assert.is_nil(out.error)
        local seen = out.body.response
        assert.equal("POST", seen.method)
        assert.equal("/echo/x", seen.uri)
        assert.equal('{"root":{"probe":"x"}}', seen.body)
        assert.is_nil(seen.headers.cookie)
        assert.is_nil(seen.headers["x-shop"])
        assert.truthy(seen.headers.authorization:match("^Basic "))
        assert.equal("application/json", seen.headers["content-type"])
      end)

      it("does not forward the storefront's POST body on a CRM GET", function()
        local url = srv.url .. "/call?via=" .. via .. "&base=" .. esc(srv.url) .. "&path=/echo/g"
        local r = assert(http.request { method = "POST", url = url, body = "shopper=data" })
        assert.equal(200, r.status)
        assert.equal("GET", r.json.body.response.method)
        assert.equal("", r.json.body.response.body)
      end)

      it("passes the CRM's own 502 through as an HTTP reply", function()
        assert(sb:faults { match = "/v1.1/customer/get", status = 502, count = 1 })
        local out = call { via = via, base = sb.url, path = "/v1.1/customer/get", mobile = sandbox.TOM.mobile }
        assert.truthy(out.error)
        assert.equal(502, out.error.status)
        assert.not_equal("network", out.error.kind)
      end)

      it("reports a refused connection as a network error", function()
        -- a port nobody listens on: the sandbox's, once we know it is closed
        local out = call { via = via, base = "http://127.0.0.1:9", path = "/v1.1/customer/get", mobile = "1" }
        assert.same("network", out.error.kind)
      end)

      it("reports a slow CRM as a timeout", function()
        assert(sb:faults { match = "/v1.1/customer/get", action = "delay", ms = 2500, count = 1 })
        local out = call { via = via, base = sb.url, path = "/v1.1/customer/get", mobile = sandbox.TOM.mobile }
        assert.same("timeout", out.error.kind)
      end)
    end)
  end

  it("falls back to the thread transport in a timer, where capture is disabled", function()
    local out = call { via = "ngx", timer = "1", base = sb.url, path = "/v1.1/customer/get",
                       mobile = sandbox.TOM.mobile }
    assert.equal("timer", out.phase)
    assert.is_nil(out.error)
    assert.equal(200, out.status)
  end)

  it("says so when the proxy location is not included", function()
    local bare = assert(runner.start { http = [[
      server { listen 127.0.0.1:${port};
        location = /t { content_by_lua_block {
          local t = require("loyalty.transport.ngx_proxy").new()
          local res, err = t:send { method = "GET", url = "http://127.0.0.1:9/x", headers = {} }
          ngx.say(res and "reply" or err.kind, " ", err and err.message or "")
        } }
      }]] })
    local ok, r = pcall(http.get, bare.url .. "/t")
    bare:stop()
    assert.is_true(ok)
    assert.truthy(r.body:match("^config .*loyalty_proxy%.conf"))
  end)
end)

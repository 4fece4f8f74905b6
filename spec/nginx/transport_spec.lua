-- The nginx transports under loyalty.client, inside a real nginx, against the sandbox and
-- against an echo location that shows what reached the "CRM".
local runner = require "loyalty.ngx.runner"
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
lua_ssl_trusted_certificate CERTDIR/trusted.pem;
init_by_lua_block { require("loyalty.ngx").configure { transport = "proxy" } }
server {
  listen 127.0.0.1:${port};
  include PROXY_CONF;

  # GET /raw?url=<url>[&insecure=1][&n=2]: transport:send through the cosocket transport, n times
  location = /raw { content_by_lua_block {
    local cjson = require "cjson.safe"
    local core = require "loyalty.core"
    local a = ngx.req.get_uri_args()
    local settings = setmetatable({ gzip = a.gzip ~= "0" }, { __index = require("loyalty.ngx").settings() })
    local t = require("loyalty.ngx.socket").new({ timeout_ms = 2000, insecure = a.insecure == "1" }, settings)
    local out = {}
    for i = 1, tonumber(a.n) or 1 do
      local req = assert(core.build_request { method = "GET", base_url = a.url,
                                              headers = { Accept = "application/json" } })
      req.timeout_ms = tonumber(a.t)
      ngx.update_time()
      local t0 = ngx.now()
      local res, err = t:send(req)
      ngx.update_time()
      if err then err.elapsed_ms = (ngx.now() - t0) * 1000 end
      out[i] = res and { status = res.status, headers = res.headers, body = res.body, reused = res.reused }
               or { error = err }
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(out))
  } }

  # GET /wire?base=<url>: one cosocket transport sends repeated, changed and many URLs to /echo/
  # (bodiless requests are sent from its wire-text cache); the echoes, in order
  location = /wire { content_by_lua_block {
    local cjson = require "cjson.safe"
    local t = require("loyalty.ngx.socket").new({ timeout_ms = 2000 }, require("loyalty.ngx").settings())
    local base = ngx.unescape_uri(ngx.var.arg_base)
    local a_lines, b_lines = { "X-Probe: a", "Accept: application/json" }, { "X-Probe: b" }
    local function send(method, path, lines, body)
      local res, err = t:send { method = method, url = base .. path, headers = lines, body = body }
      if not res then return { error = err } end
      local echo = cjson.decode(res.body).response
      return { method = echo.method, uri = echo.uri, probe = echo.headers["x-probe"], body = echo.body,
               length = echo.headers["content-length"] }
    end
    local out = {}
    out[1] = send("GET", "/echo/one?q=1", a_lines)
    out[2] = send("GET", "/echo/one?q=1", a_lines)
    out[3] = send("GET", "/echo/one?q=1", b_lines)
    out[4] = send("DELETE", "/echo/one?q=1", a_lines)
    out[5] = send("POST", "/echo/one?q=1", a_lines, "payload")
    out[6] = send("POST", "/echo/one?q=1", a_lines)
    out[7] = { wrong = 0 }
    for i = 1, 300 do
      local r = send("GET", "/echo/many?i=" .. i, a_lines)
      if r.uri ~= "/echo/many?i=" .. i or r.probe ~= "a" then out[7].wrong = out[7].wrong + 1 end
    end
    out[8] = send("GET", "/echo/one?q=1#frag", a_lines)
    out[9] = send("GET", "/echo/one?q=1", a_lines)
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(out))
  } }

  # a large chunked reply in many pieces, and one delimited by closing the connection
  location = /big {
    default_type application/json;
    content_by_lua_block {
      ngx.print('{"rows":[0')
      for i = 1, 40000 do
        ngx.print(',', i)
        if i % 1000 == 0 then ngx.flush(true) end
      end
      ngx.print(']}')
    }
  }
  # a CRM that answers at once but drips its body for seconds
  location = /drip {
    default_type application/json;
    content_by_lua_block {
      ngx.print('{"d":"') ngx.flush(true)
      for _ = 1, 30 do ngx.sleep(0.1) ngx.print("x") ngx.flush(true) end
      ngx.print('"}')
    }
  }
  location = /close {
    chunked_transfer_encoding off;
    default_type application/json;
    content_by_lua_block { ngx.print('{"closed":') ngx.flush(true) ngx.print('true}') }
  }

  # a chunked, gzip-encoded JSON reply (nginx's own gzip filter, no Content-Length)
  location = /gz {
    gzip on; gzip_min_length 1; gzip_types application/json;
    default_type application/json;
    content_by_lua_block {
      ngx.print('{"part":1,"pad":"', string.rep("x", 3000), '"')
      ngx.flush(true)
      ngx.print(',"part2":2}')
    }
  }

  # GET /call?via=proxy|thread|ngx&base=<url>&path=<path>[&method=POST][&timer=1]: one client call
  location = /call { content_by_lua_block {
    local cjson = require "cjson.safe"
    local a = ngx.req.get_uri_args()
    local topts = { timeout_ms = 800 }
    local transport = require("loyalty.ngx." .. (a.via == "ngx" and "transport" or a.via)).new(topts)
    local function call()
      local client = assert(require("loyalty.client").new {
        base_url = a.base, username = "store.server", password = "server123", transport = transport,
        max_attempts = tonumber(a.attempts) or 1, timeout_ms = tonumber(a.deadline_ms) or 800, backoff_base_ms = 10,
      })
      local r, err = client:request { method = a.method or "GET", path = a.path,
        query = { mobile = a.mobile }, json = a.method == "POST" and { root = { probe = "x" } } or nil }
      if not r then
        return { error = { kind = err.kind, status = err.status, message = err.message, attempts = err.attempts } }
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

  # GET /many?via=...&base=<url>&path=<path>&n=4[&timer=1]: one client:request_many of n GETs,
  # n at once, and how long it took
  location = /many { content_by_lua_block {
    local cjson = require "cjson.safe"
    local a = ngx.req.get_uri_args()
    local transport = require("loyalty.ngx." .. (a.via == "ngx" and "transport" or a.via)).new { timeout_ms = 3000 }
    local function batch()
      local client = assert(require("loyalty.client").new {
        base_url = a.base, username = "store.server", password = "server123", transport = transport,
        timeout_ms = 3000, max_attempts = 1,
      })
      local specs = {}
      for i = 1, tonumber(a.n) do specs[i] = { method = "GET", path = a.path, query = { i = tostring(i) } } end
      ngx.update_time()
      local t0 = ngx.now()
      local out = client:request_many(specs, #specs)
      ngx.update_time()
      local res = { elapsed_ms = (ngx.now() - t0) * 1000, results = {} }
      for i, r in ipairs(out) do
        res.results[i] = r.err and { error = r.err.kind, message = r.err.message }
                         or { status = r.status, i = r.body.i }
      end
      return res
    end
    local out
    if a.timer then
      ngx.timer.at(0, function() out = batch() out.phase = "timer" end)
      for _ = 1, 200 do
        if out then break end
        ngx.sleep(0.02)
      end
    else
      out = batch()
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
server {
  listen 127.0.0.1:${next_port} ssl;
  ssl_certificate CERTDIR/trusted.pem;
  ssl_certificate_key CERTDIR/trusted.key;
  location / { default_type application/json; return 200 '{"tls":"trusted"}'; }
}
]]

-- a second nginx: TLS with a certificate nobody trusts; and a slow "CRM" whose connections stay
-- out of the first nginx's cosocket pools (the keep-alive specs count those)
local UNTRUSTED = [[
server {
  listen 127.0.0.1:${port} ssl;
  ssl_certificate CERTDIR/other.pem;
  ssl_certificate_key CERTDIR/other.key;
  location / { default_type application/json; return 200 '{"tls":"other"}'; }
}
server {
  listen 127.0.0.1:${next_port};
  location = /slow {
    default_type application/json;
    content_by_lua_block { ngx.sleep(0.4) ngx.print('{"i":"', ngx.var.arg_i or "", '"}') }
  }
}
]]

local function esc(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

describe("nginx transports", function()
  local sb, srv, conf, certdir, other

  lazy_setup(function()
    sb = sandbox.start()
    conf = os.tmpname()
    local p = io.popen("mktemp -d /tmp/loyalty-tls.XXXXXX")
    certdir = p:read("*l")
    p:close()
    for _, name in ipairs { "trusted", "other" } do
      assert(runner.run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2" ..
        " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " .. certdir .. "/" .. name ..
        ".key -out " .. certdir .. "/" .. name .. ".pem 2>/dev/null"), "openssl failed")
    end
    local err
    srv, err = runner.start {
      main = "thread_pool loyalty threads=4;",
      http = HTTP:gsub("PROXY_CONF", proxy_conf(conf)):gsub("CERTDIR", certdir),
    }
    assert(srv, err)
    other, err = runner.start { http = (UNTRUSTED:gsub("CERTDIR", certdir)) }
    assert(other, err)
  end)

  lazy_teardown(function()
    if os.getenv("SPEC_SHOW_LOG") and srv then print(srv:error_log()) end
    if srv then srv:stop() end
    if other then other:stop() end
    if sb then sb:stop() end
    if conf then os.remove(conf) end
    if certdir then runner.run("rm -rf " .. runner.shell_quote(certdir)) end
  end)

  local function slow_url() return "http://127.0.0.1:" .. (other.port + 1) end

  local function call(args, headers)
    local q = {}
    for k, v in pairs(args) do q[#q + 1] = k .. "=" .. esc(v) end
    local r = assert(http.get(srv.url .. (args.n and "/many?" or "/call?") .. table.concat(q, "&"), headers))
    assert.equal(200, r.status)
    return r.json
  end

  for _, via in ipairs { "socket", "proxy", "thread", "ngx" } do
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

      it("runs request_many concurrently (send_many on light threads)", function()
        local out = call { via = via, base = slow_url(), path = "/slow", n = "4" }
        for i = 1, 4 do
          assert.same({ status = 200, i = tostring(i) }, out.results[i])
        end
        -- four 400 ms replies: one after another would take 1.6 s
        assert.is_true(out.elapsed_ms < 1200, out.elapsed_ms)
      end)

      it("reports a slow CRM as a timeout", function()
        assert(sb:faults { match = "/v1.1/customer/get", action = "delay", ms = 2500, count = 1 })
        local out = call { via = via, base = sb.url, path = "/v1.1/customer/get", mobile = sandbox.TOM.mobile }
        assert.same("timeout", out.error.kind)
      end)
    end)
  end

  it("proxy: waits for a hanging CRM once per storefront request, not once per attempt", function()
    assert(sb:faults { match = "/v1.1/customer/get", action = "delay", ms = 2500, count = 3 })
    local t0 = require("loyalty.core").now()
    -- a call deadline (5 s) that leaves room for every retry: each is started, and fails at once
    local out = call { via = "proxy", attempts = "3", deadline_ms = "5000", base = sb.url,
                       path = "/v1.1/customer/get", mobile = sandbox.TOM.mobile }
    local elapsed = require("loyalty.core").now() - t0
    assert(sb:clear_faults())
    assert.same("timeout", out.error.kind)
    assert.equal(3, out.error.attempts)
    -- one proxy_read_timeout (1 s here) plus the client's backoff, not three
    assert.is_true(elapsed < 2.2, elapsed)
  end)

  describe("socket (cosockets)", function()
    local function raw(args)
      local q = {}
      for k, v in pairs(args) do q[#q + 1] = k .. "=" .. esc(v) end
      local r = assert(http.get(srv.url .. "/raw?" .. table.concat(q, "&")))
      assert.equal(200, r.status, r.body)
      return r.json
    end

    it("keeps the connection to an origin for the next call", function()
      local out = raw { url = sb.url .. "/v1.1/customer/get?mobile=" .. sandbox.TOM.mobile, n = 3 }
      for i = 1, 3 do assert.is_number(out[i].status, out[i].error and out[i].error.message) end
      assert.is_true(out[2].reused)
      assert.is_true(out[3].reused)
    end)

    it("sends each request's own method, target and headers when the same URL comes again", function()
      local r = assert(http.get(srv.url .. "/wire?base=" .. esc(srv.url)))
      assert.equal(200, r.status, r.body)
      local out = r.json
      for i = 1, 3 do assert.equal("GET", out[i].method, r.body) end
      assert.equal("/echo/one?q=1", out[1].uri)
      assert.same(out[1], out[2])
      assert.equal("a", out[1].probe)
      assert.equal("b", out[3].probe)
      assert.equal("DELETE", out[4].method)
      assert.equal("POST", out[5].method)
      assert.equal("payload", out[5].body)
      assert.equal("7", out[5].length)
      assert.equal("POST", out[6].method)
      assert.equal("0", out[6].length)
      assert.equal(0, out[7].wrong) -- 300 URLs, beyond what is kept: each went where it was meant to
      assert.equal("/echo/one?q=1", out[8].uri)
      assert.same(out[1], out[9])
    end)

    it("reads a chunked gzip reply", function()
      local out = raw { url = srv.url .. "/gz" }
      assert.equal(200, out[1].status)
      assert.equal("gzip", out[1].headers["content-encoding"])
      assert.equal("chunked", out[1].headers["transfer-encoding"])
      local body = require("cjson").decode(out[1].body)
      assert.equal(1, body.part)
      assert.equal(2, body.part2)
      assert.equal(3000, #body.pad)
      -- configure{gzip = false}: not asked for, not sent
      local plain = raw { url = srv.url .. "/gz", gzip = "0" }
      assert.is_nil(plain[1].headers["content-encoding"])
      assert.equal(1, require("cjson").decode(plain[1].body).part)
    end)

    it("reads a large reply in many chunks, and one that ends when the CRM closes", function()
      local out = raw { url = srv.url .. "/big", n = 2 }
      for i = 1, 2 do
        assert.equal(200, out[i].status, out[i].error and out[i].error.message)
        local rows = require("cjson").decode(out[i].body).rows
        assert.equal(40001, #rows)
        assert.equal(40000, rows[40001])
      end
      assert.is_true(out[2].reused)
      out = raw { url = srv.url .. "/close", n = 2 }
      for i = 1, 2 do
        assert.equal('{"closed":true}', out[i].body)
        assert.is_nil(out[i].headers["content-length"])
      end
      assert.is_false(out[2].reused) -- the first one's connection ended with its reply
    end)

    it("verifies TLS against lua_ssl_trusted_certificate, and refuses an untrusted certificate", function()
      local ok = raw { url = "https://127.0.0.1:" .. (srv.port + 1) .. "/" }
      assert.equal(200, ok[1].status, ok[1].error and ok[1].error.message)
      assert.equal('{"tls":"trusted"}', ok[1].body)
      -- every time: a handshake that completes at once must not slip past verification
      local bad = raw { url = other.url:gsub("^http:", "https:") .. "/", n = 6 }
      for i = 1, 6 do
        assert.equal("tls", bad[i].error.kind, bad[i].error.message)
        assert.matches("certificate", bad[i].error.message)
      end
      local insecure = raw { url = other.url:gsub("^http:", "https:") .. "/", insecure = "1" }
      assert.equal('{"tls":"other"}', insecure[1].body)
    end)

    it("gives each attempt only the request's timeout_ms", function()
      assert(sb:faults { match = "/v1.1/customer/get", action = "delay", ms = 2500, count = 1 })
      local out = raw { url = sb.url .. "/v1.1/customer/get?mobile=" .. sandbox.TOM.mobile, t = 300 }
      assert.equal("timeout", out[1].error.kind)
      assert.is_true(out[1].error.elapsed_ms >= 250 and out[1].error.elapsed_ms < 1500, out[1].error.elapsed_ms)
    end)

    it("stops a reply that drips past the attempt's time", function()
      local out = raw { url = srv.url .. "/drip", t = 700 }
      assert.equal("timeout", out[1].error.kind, out[1].error.message)
      assert.is_true(out[1].error.elapsed_ms < 1300, out[1].error.elapsed_ms)
    end)

    it("works in a timer", function()
      local out = call { via = "socket", timer = "1", base = sb.url, path = "/v1.1/customer/get",
                         mobile = sandbox.TOM.mobile }
      assert.equal("timer", out.phase)
      assert.is_nil(out.error)
      assert.equal(200, out.status)
    end)
  end)

  it("runs request_many concurrently in a timer, through the cosocket fallback too", function()
    for _, via in ipairs { "socket", "ngx" } do
      local out = call { via = via, timer = "1", base = slow_url(), path = "/slow", n = "3" }
      assert.equal("timer", out.phase)
      for i = 1, 3 do assert.same({ status = 200, i = tostring(i) }, out.results[i]) end
      assert.is_true(out.elapsed_ms < 1000, out.elapsed_ms)
    end
  end)

  it("falls back to the cosocket transport in a timer, where capture is disabled", function()
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
          local t = require("loyalty.ngx.proxy").new()
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

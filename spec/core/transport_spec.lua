-- The libcurl transport against private nginx servers on 127.0.0.1 (plain HTTP and TLS).
local core = require "loyalty.core"
local runner = require "loyalty.ngx.runner"

local HTTP_CONF = [[
  lua_shared_dict conc 1m;
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 8m;
    client_body_buffer_size 8m; # keep bodies in memory: the workers cannot write the runner's temp dir
    gzip on;
    gzip_types application/json;
    gzip_min_length 1;
    location = /json {
      default_type application/json;
      add_header X-Cap-Requestid "rid-123";
      return 200 '{"ok":true,"n":42,"big":12345678901234567890,"name":"caf\u00e9"}';
    }
    location = /slow {
      content_by_lua_block { ngx.sleep(3) ngx.say("late") }
    }
    location = /echo {
      content_by_lua_block {
        ngx.req.read_body()
        local body = ngx.req.get_body_data()
        ngx.header["Content-Type"] = "text/plain"
        ngx.header["X-Method"] = ngx.req.get_method()
        ngx.header["X-Expect"] = ngx.var.http_expect or "none"
        ngx.header["X-Length"] = ngx.var.http_content_length or "none"
        ngx.header["X-Agent"] = ngx.var.http_user_agent or "none"
        ngx.print(body or "")
      }
    }
    location = /conc {
      content_by_lua_block {
        local d = ngx.shared.conc
        local n = d:incr("active", 1, 0)
        if n > (d:get("max") or 0) then d:set("max", n) end
        ngx.sleep(0.05)
        d:incr("active", -1)
        ngx.header["Content-Type"] = "application/json"
        ngx.print('{"i":' .. tonumber(ngx.var.arg_i) .. '}')
      }
    }
    location = /conc_max {
      content_by_lua_block { ngx.print(ngx.shared.conc:get("max") or 0) }
    }
  }
]]

local TLS_CONF = [[
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate %s/cert.pem;
    ssl_certificate_key %s/key.pem;
    location = /json {
      default_type application/json;
      return 200 '{"tls":true}';
    }
  }
]]

local function get(url)
  return { method = "GET", url = url, headers = { "User-Agent: loyalty-spec" } }
end

describe("loyalty.core transport", function()
  local http, https, certdir

  lazy_setup(function()
    local err
    http, err = runner.start { http = HTTP_CONF }
    assert(http, err)
    local p = io.popen("mktemp -d /tmp/loyalty-cert.XXXXXX")
    certdir = p:read("*l")
    p:close()
    assert(runner.run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
      .. " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:localhost"
      .. " -keyout " .. certdir .. "/key.pem -out " .. certdir .. "/cert.pem 2>/dev/null"), "openssl failed")
    https, err = runner.start { http = TLS_CONF:format(certdir, certdir) }
    assert(https, err)
  end)

  lazy_teardown(function()
    if http then http:stop() end
    if https then https:stop() end
    if certdir then runner.run("rm -rf " .. runner.shell_quote(certdir)) end
  end)

  it("performs a GET and returns status, lowercase headers and body", function()
    local s = core.session {}
    local res, err = s:perform(get(http.url .. "/json"))
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.equal("rid-123", res.headers["x-cap-requestid"])
    assert.equal("application/json", res.headers["content-type"])
    assert.is_false(res.reused)
    assert.is_number(res.total_ms)
    local reply = core.decode_reply(res.status, res.headers, res.body, nil, { "x-cap-requestid" })
    assert.equal("rid-123", reply.request_id)
    assert.equal(42, reply.body.n)
    assert.equal("12345678901234567890", reply.body.big)
    assert.equal("caf\195\169", reply.body.name)
    s:close()
  end)

  it("reuses one connection across calls (keep-alive)", function()
    local s = core.session {}
    for i = 1, 10 do
      local res = assert(s:perform(get(http.url .. "/json")))
      assert.equal(i > 1, res.reused)
    end
    local stats = s:stats()
    assert.equal(10, stats.requests)
    assert.equal(1, stats.connects)
    s:close()
  end)

  it("decodes a gzip-encoded reply", function()
    local s = core.session {}
    local res = assert(s:perform(get(http.url .. "/json")))
    assert.equal("gzip", res.headers["content-encoding"])
    assert.equal(42, core.json_decode(res.body).n)
    s:close()
    s = core.session { accept_encoding = false }
    res = assert(s:perform(get(http.url .. "/json")))
    assert.is_nil(res.headers["content-encoding"])
    assert.equal(42, core.json_decode(res.body).n)
    s:close()
  end)

  it("sends bodies with every method and no Expect header", function()
    local s = core.session {}
    for _, method in ipairs { "POST", "PUT", "PATCH", "DELETE" } do
      local res = assert(s:perform { method = method, url = http.url .. "/echo", body = '{"m":"' .. method .. '"}' })
      assert.equal(200, res.status)
      assert.equal(method, res.headers["x-method"])
      assert.equal('{"m":"' .. method .. '"}', res.body)
    end
    local big = string.rep("0123456789", 200000)
    local res = assert(s:perform { method = "POST", url = http.url .. "/echo", body = big, headers = {} })
    assert.equal("none", res.headers["x-expect"])
    assert.equal(#big, #res.body)
    assert.equal(big, res.body)
    res = assert(s:perform { method = "POST", url = http.url .. "/echo" })
    assert.equal("POST", res.headers["x-method"])
    assert.equal("0", res.headers["x-length"])
    assert.equal("", res.body)
    res = assert(s:perform(get(http.url .. "/echo")))
    assert.equal("GET", res.headers["x-method"])
    assert.equal("loyalty-spec", res.headers["x-agent"])
    s:close()
  end)

  it("keeps each call's method when one handle switches methods on the same URL", function()
    local s = core.session {}
    local url = http.url .. "/echo"
    local seq = { "GET", "GET", "POST", "GET", "GET", "HEAD", "GET", "DELETE", "OPTIONS", "PUT", "GET", "GET" }
    for i, method in ipairs(seq) do
      local body = (method == "POST" or method == "PUT") and ("b" .. i) or nil
      local res = assert(s:perform { method = method, url = url, body = body })
      assert.equal(200, res.status)
      assert.equal(method, res.headers["x-method"], "call " .. i)
      assert.equal(method == "HEAD" and "" or (body or ""), res.body, "call " .. i)
    end
    -- the same method on another URL still goes to that URL
    local res = assert(s:perform(get(http.url .. "/json")))
    assert.equal("rid-123", res.headers["x-cap-requestid"])
    res = assert(s:perform(get(url)))
    assert.equal("GET", res.headers["x-method"])
    s:close()
  end)

  it("sends what build_request produced", function()
    local req = assert(core.build_request {
      method = "POST", base_url = http.url, path = "/echo", json = { a = core.empty_array },
      headers = { ["User-Agent"] = "lua-loyalty/0.1.0" },
    })
    local s = core.session {}
    local res = assert(s:perform(req))
    assert.equal('{"a":[]}', res.body)
    assert.equal("lua-loyalty/0.1.0", res.headers["x-agent"])
    s:close()
  end)

  it("times out with kind timeout", function()
    local s = core.session { timeout_ms = 200 }
    local res, err = s:perform(get(http.url .. "/slow"))
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.equal(28, err.curl_code)
    assert.is_string(err.message)
    s:close()
  end)

  it("per-request timeouts bound one exchange; the next goes back to the session's", function()
    local s = core.session { timeout_ms = 5000 }
    local req = get(http.url .. "/slow")
    req.timeout_ms, req.connect_timeout_ms = 200, 100
    local t0 = core.now()
    local res, err = s:perform(req)
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.is_true(core.now() - t0 < 2.5)
    -- exchange: the limits as trailing arguments
    t0 = core.now()
    local reply, eerr, stage = s:exchange("GET", http.url, "/slow", nil, nil, nil, {}, nil, 200, 100)
    assert.is_nil(reply)
    assert.equal("transport", stage)
    assert.equal("timeout", eerr.kind)
    assert.is_true(core.now() - t0 < 2.5)
    -- without limits the session's apply again (5 s > the 3 s the server takes)
    res = assert(s:perform(get(http.url .. "/slow")))
    assert.equal(200, res.status)
    -- perform_multi: each request's own limit
    local out = core.perform_multi({ timeout_ms = 5000 }, { req, get(http.url .. "/json") }, 2)
    assert.equal("timeout", out[1].err.kind)
    assert.equal(200, out[2].status)
    s:close()
  end)

  it("refuses bad per-request timeouts as programmer errors", function()
    local s = core.session {}
    for _, v in ipairs { 0, -1, "100", 1e12, 0 / 0 } do
      local req = get(http.url .. "/json")
      req.timeout_ms = v
      assert.has_error(function() s:perform(req) end)
      assert.has_error(function() core.perform_multi({}, { req }, 1) end)
      assert.has_error(function() s:exchange("GET", http.url, "/json", nil, nil, nil, {}, nil, v) end)
    end
    s:close()
  end)

  it("reports connection refused as a network error", function()
    local s = core.session { connect_timeout_ms = 2000 }
    local res, err = s:perform(get("http://127.0.0.1:1/"))
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal(7, err.curl_code)
    s:close()
  end)

  it("verifies TLS by default", function()
    local s = core.session {}
    local res, err = s:perform(get(https.url:gsub("^http:", "https:") .. "/json"))
    assert.is_nil(res)
    assert.equal("tls", err.kind)
    s:close()
  end)

  it("accepts the server with ca_file", function()
    local s = core.session { ca_file = certdir .. "/cert.pem" }
    local res, err = s:perform(get(https.url:gsub("^http:", "https:") .. "/json"))
    assert.is_nil(err)
    assert.same({ tls = true }, core.json_decode(res.body))
    s:close()
  end)

  it("skips verification with insecure=true", function()
    local s = core.session { insecure = true }
    local res, err = s:perform(get(https.url:gsub("^http:", "https:") .. "/json"))
    assert.is_nil(err)
    assert.equal(200, res.status)
    s:close()
  end)

  it("runs requests concurrently with perform_multi, results in input order", function()
    local reqs = {}
    for i = 1, 20 do reqs[i] = get(http.url .. "/conc?i=" .. i) end
    reqs[7] = get("http://127.0.0.1:1/refused")
    local results = core.perform_multi({ connect_timeout_ms = 2000 }, reqs, 4)
    assert.equal(20, #results)
    for i = 1, 20 do
      if i == 7 then
        assert.equal("network", results[i].err.kind)
      else
        assert.is_nil(results[i].err)
        assert.equal(200, results[i].status)
        assert.equal(i, core.json_decode(results[i].body).i)
      end
    end
    local s = core.session {}
    local max = tonumber(assert(s:perform(get(http.url .. "/conc_max"))).body)
    s:close()
    assert.is_true(max <= 4, "max in flight " .. max)
    assert.is_true(max >= 2, "max in flight " .. max)
  end)

  it("handles empty and single-slot perform_multi", function()
    assert.same({}, core.perform_multi({}, {}, 4))
    local results = core.perform_multi(nil, { get(http.url .. "/json"), get(http.url .. "/json") }, 1)
    assert.equal(200, results[1].status)
    assert.equal(200, results[2].status)
  end)

  it("raises on bad perform_multi arguments before any traffic", function()
    assert.has_error(function() core.perform_multi({}, { { url = 1 } }, 2) end)
    assert.has_error(function() core.perform_multi({}, {}, 0) end)
    assert.has_error(function() core.perform_multi({ bogus = 1 }, {}, 1) end)
  end)

  it("closes idempotently and refuses use after close", function()
    local s = core.session {}
    assert(s:perform(get(http.url .. "/json")))
    s:close()
    s:close()
    assert.has_error(function() s:perform(get(http.url .. "/json")) end)
    assert.equal(1, s:stats().requests)
    assert.matches("closed", tostring(s))
  end)

  it("supports to-be-closed variables on Lua 5.4", function()
    if _VERSION ~= "Lua 5.4" then return end
    local chunk = assert(load([[
      local core = ...
      local kept
      do
        local s <close> = core.session {}
        kept = s
      end
      return kept
    ]]))
    local s = chunk(core)
    assert.matches("closed", tostring(s))
  end)

  it("raises on bad session options and requests", function()
    assert.has_error(function() core.session { timeout_ms = "1" } end)
    assert.has_error(function() core.session { unknown = true } end)
    assert.has_error(function() core.session { insecure = "yes" } end)
    local s = core.session {}
    assert.has_error(function() s:perform { method = "GET" } end)
    assert.has_error(function() s:perform { method = "GET", url = "http://x", headers = { 1 } } end)
    s:close()
  end)
end)

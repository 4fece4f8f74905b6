-- The client's one-call path over libcurl (transport:exchange, one session:exchange in C) against a
-- private nginx: it must give exactly what the general path (build_request, transport:send,
-- decode_reply) gives.
local core = require "loyalty.core"
local loyalty = require "loyalty"
local runner = require "loyalty.ngx.runner"
local curl_transport = require "loyalty.transport.curl"

local CONF = [[
  server {
    listen 127.0.0.1:${port};
    location = /v2/customers/lookup {
      default_type application/json;
      add_header X-CAP-RequestId "rid-lookup";
      return 200 '{"entity":343445001,"warnings":[{"code":1,"message":"w"}],"big":12345678901234567890}';
    }
    location = /v2/customers/7 {
      content_by_lua_block {
        ngx.header["Content-Type"] = "application/json"
        ngx.header["X-Request-Id"] = "rid-echo"
        ngx.print(require("cjson").encode { method = ngx.req.get_method(), args = ngx.req.get_uri_args(),
                                            agent = ngx.var.http_user_agent, auth = ngx.var.http_authorization })
      }
    }
    location = /v2/transactions {
      content_by_lua_block {
        ngx.req.read_body()
        ngx.status = 200
        ngx.header["Content-Type"] = "application/json"
        local sent = require("cjson").decode(ngx.req.get_body_data())
        ngx.print(require("cjson").encode { createdId = 99, warnings = {}, echo = sent,
          sideEffects = { { type = "points", awardedPoints = 12 }, { type = "points", awardedPoints = 3 } } })
      }
    }
    location = /v2/otp {
      add_header Retry-After "7" always;
      default_type text/html;
      return 429 '<html>slow down</html>';
    }
    location = /v2/customers/8 {
      default_type application/json;
      add_header X-Request-Id "rid-generic";
      add_header x-CAP-request-ID "rid-second";
      add_header X-Cap-RequestId "  rid-first  ";
      add_header Retry-After " 3 ";
      return 200 '{"id":8}';
    }
    location = /v2/points/reverse {
      default_type application/json;
      return 400 '{"errors":[{"code":8015,"message":"Customer not found"}]}';
    }
    location = /v2/otp/validate {
      default_type text/plain;
      return 200 'not json at all';
    }
  }
]]

local LOOKUP = { source = "INSTORE", identifierName = "mobile", identifierValue = "919999000001" }

-- The same client twice: the default (one-call path) and one whose transport offers only the
-- contract's send, over the same libcurl transport (the general path), with instant retries.
local function clients(url)
  local opts = function(extra)
    local o = { base_url = url, username = "store.server", password = "server123", max_attempts = 1,
                sleep = function() end }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end
  local curl = curl_transport.new {}
  local send_only = { send = function(_, req) return curl:send(req) end, close = function() curl:close() end }
  local fast = assert(loyalty.client(opts()))
  local general = assert(loyalty.client(opts { transport = send_only }))
  assert.is_function(fast.one_call)
  assert.is_nil(general.one_call)
  return fast, general
end

-- Results and errors without the fields that differ by nature between two calls.
local function comparable(r, err)
  local t = r or err
  local copy = {}
  for k, v in pairs(t) do copy[k] = v end
  return copy, r == nil
end

describe("client one-call path (transport:exchange)", function()
  local server, fast, general

  lazy_setup(function()
    local err
    server, err = runner.start { http = CONF }
    assert(server, err)
    fast, general = clients(server.url)
  end)

  lazy_teardown(function()
    if fast then fast:close() end
    if general then general:close() end
    if server then server:stop() end
  end)

  local cases = {
    { "a v2 lookup with a request id and a big id", function(c) return c:v2_customer_lookup(LOOKUP) end },
    { "a GET with a query, User-Agent and Basic auth", function(c)
        return c:v2_customer_get(7, { source = "INSTORE", embed = "points summary" }) end },
    { "a POST with a JSON body and side effects", function(c)
        return c:v2_transaction_add({ billNumber = "B1", billAmount = 100, lineItemsV2 = core.empty_array }) end },
    { "a 429 with an HTML body and Retry-After", function(c) return c:v2_otp_get { mobile = "1" } end },
    { "three request-id headers in mixed case (the first name of the list wins)", function(c)
        return c:v2_customer_get(8) end },
    { "a v2 error envelope", function(c) return c:v2_points_reverse { id = 1 } end },
    { "a 200 whose body is not JSON", function(c) return c:v2_otp_validate { code = "1" } end },
    { "a path the URL cannot hold", function(c) return c:request { method = "GET", path = "/v2/a b" } end },
  }

  for _, case in ipairs(cases) do
    it("gives what the general path gives: " .. case[1], function()
      local a, a_failed = comparable(case[2](fast))
      local b, b_failed = comparable(case[2](general))
      assert.equal(b_failed, a_failed)
      assert.same(b, a)
    end)
  end

  it("reads the documented fields", function()
    local r = assert(fast:v2_customer_lookup(LOOKUP))
    assert.equal(200, r.status)
    assert.equal("rid-lookup", r.request_id)
    assert.equal(343445001, r.customer_id)
    assert.equal("12345678901234567890", r.body.big)
    assert.equal("w", r.warnings[1].message)

    local echo = assert(fast:v2_customer_get(7, { source = "INSTORE", embed = "points summary" }))
    assert.equal("rid-echo", echo.request_id)
    assert.same({ source = "INSTORE", embed = "points summary" }, echo.customer.args)
    assert.matches("^lua%-loyalty/", echo.customer.agent)
    assert.equal("Basic c3RvcmUuc2VydmVyOjhhMTZhNmI3MDUwNWViMWYxZmY3Y2RjMGNkNTU1OWE3", echo.customer.auth)

    local tx = assert(fast:v2_transaction_add { billNumber = "B1", billAmount = 100 })
    assert.equal(99, tx.created_id)
    assert.equal(15, tx.points_earned)
    assert.equal("B1", tx.body.echo.billNumber)
  end)

  it("keeps Retry-After of an error page that is not JSON", function()
    local _, err = fast:v2_otp_get { mobile = "1" }
    assert.equal("rate_limited", err.kind)
    assert.equal(429, err.status)
    assert.equal(7, err.retry_after)
  end)

  it("reports a 2xx body that is not JSON as a decode error with the raw text", function()
    local _, err = fast:v2_otp_validate { code = "1" }
    assert.equal("decode", err.kind)
    assert.equal("not json at all", err.raw)
  end)

  it("returns transport failures as network errors with the libcurl code", function()
    local c = assert(loyalty.client { base_url = "http://127.0.0.1:1", username = "u", password = "p",
                                      max_attempts = 1 })
    local _, err = c:v2_customer_lookup(LOOKUP)
    assert.equal("network", err.kind)
    assert.equal(7, err.curl_code)
    c:close()
  end)

  it("keeps one connection for many calls", function()
    local c = assert(loyalty.client { base_url = server.url, username = "u", password = "p" })
    for _ = 1, 5 do assert(c:v2_customer_lookup(LOOKUP)) end
    assert.same({ requests = 5, connects = 1 }, c.transport:stats())
    c:close()
  end)

  describe("session:exchange", function()
    local lines = { "Accept: application/json" }

    it("returns the reply without a headers table, and the stage of a failure", function()
      local s = core.session { request_id_headers = { "x-cap-requestid", "x-request-id" } }
      local reply = assert(s:exchange("GET", server.url, "/v2/customers/lookup", LOOKUP, nil, nil, lines))
      assert.same({ status = 200, request_id = "rid-lookup",
                    body = { entity = 343445001, warnings = { { code = 1, message = "w" } },
                             big = "12345678901234567890" } }, reply)

      local r, err, stage = s:exchange("GET", server.url, "/v2/otp/validate", nil, nil, nil, lines)
      assert.is_nil(r)
      assert.same({ "decode", 200, "reply" }, { err.kind, err.status, stage })

      r, err, stage = s:exchange("GET", server.url, "/a\nb", nil, nil, nil, lines)
      assert.is_nil(r)
      assert.same({ "config", "build" }, { err.kind, stage })

      r, err, stage = s:exchange("POST", server.url, "/v2/transactions", nil, { n = 0 / 0 }, nil, lines)
      assert.is_nil(r)
      assert.same({ "config", "build" }, { err.kind, stage })

      r, err, stage = s:exchange("GET", "http://127.0.0.1:1", "/", nil, nil, nil, lines)
      assert.is_nil(r)
      assert.same({ "network", "transport" }, { err.kind, stage })
      s:close()
    end)

    it("raises on programmer errors before any traffic", function()
      local s = core.session {}
      assert.has_error(function() s:exchange("BREW", server.url, "/", nil, nil, nil, lines) end)
      assert.has_error(function() s:exchange("GET", 42, "/", nil, nil, nil, lines) end)
      assert.has_error(function() s:exchange("GET", server.url, "/", "q=1", nil, nil, lines) end)
      assert.has_error(function() s:exchange("POST", server.url, "/", nil, {}, "body", lines) end)
      assert.has_error(function() s:exchange("GET", server.url, "/", nil, nil, nil, { 1 }) end)
      assert.has_error(function() s:exchange("GET", server.url, "/", nil, nil, nil) end)
      assert.same({ requests = 0, connects = 0 }, s:stats())
      s:close()
      assert.has_error(function() s:exchange("GET", server.url, "/", nil, nil, nil, lines) end)
    end)
  end)

  -- One lookup in a child process with `env` set; its result or error as text.
  local function lookup_with_env(env, extra_opts)
    local interp = type(jit) == "table" and "luajit" or "lua5.4"
    local script = ("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path "
      .. "package.cpath = '%s' .. package.cpath "
      .. "local c = assert(require('loyalty').client { base_url = '%s', username = 'u', password = 'p', "
      .. "max_attempts = 1 %s }) "
      .. "local r, err = c:v2_customer_lookup { identifierName = 'mobile', identifierValue = '1' } "
      .. "io.write(r and 'ok' or err.kind)"):format(package.cpath:match("^[^;]*;"), server.url, extra_opts or "")
    local p = assert(io.popen(env .. " " .. interp .. " -e " .. runner.shell_quote(script) .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("reads the request id and Retry-After whatever their case, trimmed", function()
    local r = assert(fast:v2_customer_get(8))
    assert.equal("rid-first", r.request_id)
    assert.equal(3, r.retry_after)
  end)

  it("ignores a proxy in the environment unless one is configured", function()
    assert.equal("ok", lookup_with_env("http_proxy=http://127.0.0.1:1 HTTP_PROXY=http://127.0.0.1:1 "
                                       .. "ALL_PROXY=http://127.0.0.1:1"))
  end)

  it("sends through the configured proxy even to a host in an ambient no_proxy", function()
    -- The proxy (port 1) refuses connections: reaching the server directly would say ok.
    assert.equal("network", lookup_with_env("no_proxy=127.0.0.1 NO_PROXY=127.0.0.1",
                                            ", proxy = 'http://127.0.0.1:1'"))
  end)
end)

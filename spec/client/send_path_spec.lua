-- One send path: the client hands requests to its transport (send, send_many, the optional
-- exchange) and decides every retry, single or batch, with the same rules.
local loyalty = require "loyalty"
local errors = require "loyalty.errors"
local transports = require "loyalty.transport"
local curl_transport = require "loyalty.transport.curl"
local capillary = require "loyalty.providers.capillary"
local fake = require "support.fake_transport"

local LOOKUP = '{"entity": 7, "warnings": []}'
local DUP_604 = [[{ "response": { "status": { "success": "false", "code": 500, "message": "failed" },
  "transactions": { "transaction": [ { "number": "B1",
    "item_status": { "success": "false", "code": 604, "message": "Transaction number already exists" } } ] } } }]]

-- A scripted transport (support.fake_transport) that also has send_many: it records each batch
-- handed to it and answers its requests from the same script.
local function batching(replies)
  local t = fake.new(replies)
  t.batches = {}
  function t.send_many(self, reqs, max_in_flight)
    self.batches[#self.batches + 1] = { n = #reqs, max_in_flight = max_in_flight }
    local out = {}
    for i, req in ipairs(reqs) do
      local res, err = self:send(req)
      out[i] = res or { err = err }
    end
    return out
  end
  return t
end

-- A client with a simulated clock; sleeps are recorded and advance it.
local function client_with(transport, extra)
  local clock = { now = 1000, sleeps = {} }
  local opts = { base_url = "http://crm.test", username = "till", password = "secret-1", transport = transport,
                 now = function() return clock.now end, random = function() return 1 end,
                 sleep = function(s)
                   clock.sleeps[#clock.sleeps + 1] = s
                   clock.now = clock.now + s
                 end }
  for k, v in pairs(extra or {}) do
    if v == false then opts[k] = nil else opts[k] = v end
  end
  return assert(loyalty.client(opts)), clock
end

local function lookups(n)
  local specs = {}
  for i = 1, n do specs[i] = { method = "GET", path = "/v2/customers/lookup", query = { n = tostring(i) } } end
  return specs
end

describe("one send path", function()
  describe("request_many", function()
    it("honours Retry-After like a single call (capped by retry_after_max_ms)", function()
      local t = batching {
        { status = 429, headers = { ["retry-after"] = "3" }, body = "" }, { body = LOOKUP },
        { body = LOOKUP }, { body = LOOKUP },
      }
      local c, clock = client_with(t, { timeout_ms = 10000 })
      local out = c:request_many(lookups(2), 2)
      assert.same({ 3 }, clock.sleeps) -- not the 0.2 s backoff of the first retry
      assert.equals(200, out[1].status)
      assert.equals(2, out[1].attempts)
      assert.equals(1, out[2].attempts)
      -- a Retry-After beyond the cap waits the cap
      t = batching { { status = 503, headers = { ["retry-after"] = "60" }, body = "" }, { body = LOOKUP } }
      c, clock = client_with(t, { timeout_ms = 10000, retry_after_max_ms = 1500 })
      out = c:request_many(lookups(1), 1)
      assert.same({ 1.5 }, clock.sleeps)
      assert.equals(2, out[1].attempts)
    end)

    it("does not start a retry Retry-After pushes past the batch's deadline", function()
      local t = batching { { status = 429, headers = { ["retry-after"] = "999" }, body = "" } }
      local c, clock = client_with(t, { timeout_ms = 2000 })
      local out = c:request_many(lookups(1), 4)
      assert.same({}, clock.sleeps)
      assert.equals(1, #t.requests)
      assert.equals("rate_limited", out[1].err.kind)
      assert.is_true(out[1].err.deadline_reached)
    end)

    it("takes the duplicate code on a retried write as already delivered", function()
      local t = batching {
        { err = { kind = "timeout", message = "Operation timed out", curl_code = 28 } },
        { body = DUP_604 },
      }
      local c = client_with(t)
      local spec = capillary.ops.transaction_add { type = "regular", number = "B1", amount = 100,
                                                   customer = { mobile = "1" } }
      local out = c:request_many({ spec }, 1)
      assert.is_nil(out[1].err)
      assert.is_true(out[1].duplicate)
      assert.equals(2, out[1].attempts)
      assert.equals(2, #t.requests)
    end)

    it("hands a batch to the transport's send_many, max_in_flight at once", function()
      local t = batching(function() return { body = LOOKUP } end)
      local c = client_with(t)
      local out = c:request_many(lookups(5), 3)
      assert.same({ { n = 5, max_in_flight = 3 } }, t.batches)
      for i = 1, 5 do assert.equals(7, out[i].body.entity) end
      assert.equals("/v2/customers/lookup?n=4", t.requests[4].url:match("/v2.*"))
    end)

    it("sends one after another through send when the transport has no send_many", function()
      local t = fake.new { { body = LOOKUP }, { status = 503, body = "" }, { body = LOOKUP }, { body = LOOKUP } }
      assert.is_nil(t.send_many)
      local c, clock = client_with(t)
      local out = c:request_many(lookups(3), 3)
      assert.equals(4, #t.requests)
      assert.same({ 1, 2, 1 }, { out[1].attempts, out[2].attempts, out[3].attempts })
      assert.same({ 0.2 }, clock.sleeps)
    end)

    it("without send_many, the batch's deadline counts each request as its own wave", function()
      local clock
      local t = fake.new(function()
        clock.now = clock.now + 0.4 -- each request takes 400 ms, one after another
        return { status = 503, body = "" }
      end)
      local c
      c, clock = client_with(t, { timeout_ms = 1000, max_attempts = 2 })
      local out = c:request_many(lookups(3), 3)
      -- 1.2 s for the first round: past one wave's 1 s, inside three waves' 3 s, so each is retried
      assert.equals(6, #t.requests)
      for i = 1, 3 do
        assert.same({ "http", 503, 2 }, { out[i].err.kind, out[i].err.status, out[i].err.attempts })
        assert.is_nil(out[i].err.deadline_reached)
      end
      assert.equals(1000, t.requests[4].timeout_ms) -- each attempt still has the client's timeout
    end)

    it("renews a rejected token once for the whole batch, attempts counted afresh", function()
      local issued = 0
      local t = batching(function(req)
        if req.url:find("/v3/oauth/token/generate", 1, true) then
          issued = issued + 1
          return { body = ('{"data":{"accessToken":"tok-%06d","ttlSeconds":300}}'):format(issued) }
        end
        if fake.header(req, "X-CAP-API-OAUTH-TOKEN") == "tok-000001" then return { status = 401, body = "" } end
        return { body = LOOKUP }
      end)
      local c = client_with(t, { username = false, password = false, client_key = "batch-key",
                                 client_secret = "batch-secret" })
      local out = c:request_many(lookups(3), 3)
      assert.equals(2, issued)
      for i = 1, 3 do assert.same({ 7, 1 }, { out[i].body.entity, out[i].attempts }) end
      assert.equals(2, #t.batches)
    end)

    it("emits a retry event per retried request", function()
      local events = {}
      local t = batching { { status = 503, body = "" }, { body = LOOKUP }, { body = LOOKUP } }
      local c = client_with(t, { log = function(level, event, fields)
        events[#events + 1] = { level, event, fields.attempt, fields.status }
      end })
      c:request_many(lookups(2), 2)
      assert.same({ { "info", "retry", 1, 503 } }, events)
    end)
  end)

  describe("request_many over libcurl (send_many: curl_multi)", function()
    -- Each location answers its first request with a failure and the later ones with success.
    local CONF = [[
      lua_shared_dict seen 1m;
      server {
        listen 127.0.0.1:${port};
        location /ra/ { content_by_lua_block {
          local n = ngx.shared.seen:incr(ngx.var.uri, 1, 0)
          if n == 1 then
            ngx.status = 429
            ngx.header["Retry-After"] = "3"
            return ngx.print("<html>slow down</html>")
          end
          ngx.header["Content-Type"] = "application/json"
          ngx.print('{"n":' .. n .. '}')
        } }
        location /dup/ { content_by_lua_block {
          local n = ngx.shared.seen:incr(ngx.var.uri, 1, 0)
          if n == 1 then return ngx.exit(503) end
          ngx.header["Content-Type"] = "application/json"
          ngx.print(ngx.var.dup)
        } }
      }
    ]]
    local runner = require "loyalty.ngx.runner"
    local server

    lazy_setup(function()
      local err
      server, err = runner.start { http = CONF:gsub("ngx%.var%.dup", "[=[" .. DUP_604 .. "]=]") }
      assert(server, err)
    end)
    lazy_teardown(function() if server then server:stop() end end)

    local function real(prefix, extra)
      local sleeps = {}
      local opts = { base_url = server.url .. prefix, username = "till", password = "secret-1",
                     random = function() return 1 end, sleep = function(s) sleeps[#sleeps + 1] = s end }
      for k, v in pairs(extra or {}) do opts[k] = v end
      local c = assert(loyalty.client(opts))
      return c, sleeps
    end

    it("honours Retry-After", function()
      local c, sleeps = real "/ra"
      local out = c:request_many({ { method = "GET", path = "/a" }, { method = "GET", path = "/b" } }, 2)
      assert.same({ 3 }, sleeps) -- one round's sleep: the longest Retry-After, not the 0.2 s backoff
      assert.same({ 2, 2 }, { out[1].body.n, out[2].body.n })
      assert.same({ 2, 2 }, { out[1].attempts, out[2].attempts })
      c:close()
    end)

    it("takes the duplicate code on a retried write as already delivered", function()
      local c = real "/dup"
      local spec = capillary.ops.transaction_add { type = "regular", number = "B1", amount = 100,
                                                   customer = { mobile = "1" } }
      local out = c:request_many({ spec }, 1)
      assert.is_nil(out[1].err)
      assert.is_true(out[1].duplicate)
      assert.equals(2, out[1].attempts)
      c:close()
    end)
  end)

  describe("transport errors", function()
    it("transport.send_many gives loyalty.errors tables, with or without send_many", function()
      local bare = { err = { kind = "weird", message = "socket gone", curl_code = 56 } }
      for _, t in ipairs { fake.new { bare }, batching { bare } } do
        local out = transports.send_many(t, { { method = "GET", url = "http://crm.test/", headers = {} } }, 2)
        local err = out[1].err
        assert.is_true(errors.is_error(err))
        assert.same({ "network", "socket gone", 56, true }, { err.kind, err.message, err.curl_code, err.retryable })
      end
      local t = transports.error("tls", "bad certificate")
      assert.is_false(t.retryable)
      assert.equals(t, transports.as_error(t))
      assert.equals("timeout", transports.as_error({ kind = "timeout", message = "slow" }).kind)
      assert.is_true(transports.as_error({ kind = "timeout" }).retryable)
    end)

    it("the libcurl transport returns them from send, send_many and exchange", function()
      local t = curl_transport.new { connect_timeout_ms = 1000 }
      local req = { method = "GET", url = "http://127.0.0.1:1/", headers = {} }
      local _, err = t:send(req)
      local many = t:send_many({ req, req }, 2)
      local _, xerr, stage = t:exchange({ method = "GET", path = "/" }, "http://127.0.0.1:1", {}, 2048, 1000, 1000)
      assert.equals("transport", stage)
      for _, e in ipairs { err, many[1].err, many[2].err, xerr } do
        assert.is_true(errors.is_error(e))
        assert.same({ "network", 7, true }, { e.kind, e.curl_code, e.retryable })
      end
      t:close()
    end)

    it("a transport's bare error still reaches the caller as a loyalty.errors table", function()
      local c = client_with(fake.new { { err = { kind = "network", message = "reset", curl_code = 56 } } },
                            { max_attempts = 1 })
      local _, err = c:v2_customer_lookup { mobile = "1" }
      assert.is_true(errors.is_error(err))
      assert.same({ "network", 56, true, 1 }, { err.kind, err.curl_code, err.retryable, err.attempts })
    end)
  end)

  it("the one-call path is the transport's: a custom exchange is used, send is not", function()
    local calls = {}
    local t = {
      send = function() error("send must not be called") end,
      exchange = function(_, spec, base_url, lines, raw_cap, timeout_ms, connect_ms)
        calls[#calls + 1] = { spec.method, spec.path, base_url, type(lines), raw_cap > 0, timeout_ms, connect_ms }
        return { status = 200, body = { entity = 9, warnings = {} } }
      end,
    }
    local c = client_with(t, { timeout_ms = 4000, connect_timeout_ms = 1500 })
    assert.is_function(c.one_call)
    assert.equals(9, assert(c:v2_customer_lookup { mobile = "1" }).customer_id)
    assert.same({ { "GET", "/v2/customers/lookup", "http://crm.test", "table", true, 4000, 1500 } }, calls)
  end)
end)

-- One deadline per call: timeout_ms bounds connect, every attempt, every backoff and Retry-After
-- sleep, and token refreshes; a retry that cannot finish inside it is not started.
local loyalty = require "loyalty"
local core = require "loyalty.core"
local fake = require "support.fake_transport"
local script = require "support.script_server"

local LOOKUP = '{"entity": 7, "warnings": []}'

-- A simulated clock: sleeps and scripted "slow" replies advance it.
local function sim()
  local t = { now = 1000, sleeps = {} }
  function t.clock() return t.now end
  function t.sleep(s)
    t.sleeps[#t.sleeps + 1] = s
    t.now = t.now + s
  end
  return t
end

local function client(replies, extra, clock)
  clock = clock or sim()
  local opts = { base_url = "http://crm.test", username = "till", password = "secret-1", transport = fake.new(replies),
                 sleep = clock.sleep, now = clock.clock, random = function() return 1 end }
  for k, v in pairs(extra or {}) do
    if v == false then opts[k] = nil else opts[k] = v end
  end
  local c = assert(loyalty.client(opts))
  return c, opts.transport, clock
end

describe("call deadline", function()
  it("Retry-After beyond the deadline: no sleep, the error says the deadline was reached and what was seen", function()
    local c, t, clock = client({
      { status = 429, headers = { ["retry-after"] = "999999999" }, body = "" },
    }, { timeout_ms = 2000 })
    local r, err = c:v2_customer_lookup { mobile = "1" }
    assert.is_nil(r)
    assert.equals(0, #clock.sleeps)
    assert.equals(1, #t.requests)
    assert.equals("rate_limited", err.kind)
    assert.is_true(err.deadline_reached)
    assert.equals(2000, err.deadline_ms)
    assert.matches("deadline of 2000 ms reached", tostring(err), 1, true)
    assert.matches("HTTP 429", tostring(err), 1, true)
    assert.is_true(err.retryable) -- the program still queues what it may queue
  end)

  it("each attempt gets what is left; sleeps and attempts never exceed the deadline", function()
    local clock = sim()
    local replies = function(req)
      clock.now = clock.now + 0.7 -- every attempt takes 700 ms
      return { status = 503, body = "", seen = req }
    end
    local c, t = client(replies, { timeout_ms = 2000, max_attempts = 5, backoff_base_ms = 100 }, clock)
    local start = clock.now
    local _, err = c:v2_customer_lookup { mobile = "1" }
    assert.is_true(clock.now - start <= 2.0 + 1e-9)
    assert.equals(#t.requests, err.attempts)
    assert.is_true(err.attempts >= 2 and err.attempts < 5)
    assert.is_true(err.deadline_reached)
    local prev = math.huge
    for _, req in ipairs(t.requests) do
      assert.is_true(req.timeout_ms <= 2000 and req.timeout_ms < prev)
      assert.is_true(req.connect_timeout_ms <= req.timeout_ms)
      prev = req.timeout_ms
    end
  end)

  it("a per-call timeout_ms and client:with_timeout override the client's", function()
    local c, t = client(function() return { body = LOOKUP } end, { timeout_ms = 9000, connect_timeout_ms = 5000 })
    assert(c:request { method = "GET", path = "/v2/customers/lookup", timeout_ms = 1500 })
    assert.equals(1500, t.requests[1].timeout_ms)
    assert.equals(1500, t.requests[1].connect_timeout_ms)
    local view = c:with_timeout(700)
    assert(view:v2_customer_lookup { mobile = "1" })
    assert.equals(700, t.requests[2].timeout_ms)
    assert(c:v2_customer_lookup { mobile = "1" })
    assert.equals(9000, t.requests[3].timeout_ms)
    assert.equals(5000, t.requests[3].connect_timeout_ms)
    view:close() -- a view never closes the client
    assert.equals(0, t.closed)
    assert.has_error(function() c:with_timeout(0) end)
    assert.has_error(function() c:request { method = "GET", path = "/x", timeout_ms = "1" } end)
    assert.is_nil(loyalty.client { base_url = "http://x", username = "u", password = "p", timeout_ms = 0 })
  end)

  it("a token refresh runs inside the call's deadline", function()
    local clock = sim()
    local c, t = client(function(req)
      if req.url:find("oauth", 1, true) then
        clock.now = clock.now + 1.5
        return { body = '{"data": {"accessToken": "tok-abcdef", "ttlSeconds": 600}}' }
      end
      return { body = LOOKUP }
    end, { username = false, password = false, client_key = "deadline-key", client_secret = "secret-2",
           timeout_ms = 2000, clock = function() return clock.now end }, clock)
    assert(c:v2_customer_lookup { mobile = "1" })
    assert.equals(2000, t.requests[1].timeout_ms)
    assert.is_true(t.requests[2].timeout_ms <= 500)
    -- A refresh that uses the whole deadline leaves nothing to send: a timeout, not a hang.
    local c2 = client(function(req)
      if req.url:find("oauth", 1, true) then
        clock.now = clock.now + 3
        return { body = '{"data": {"accessToken": "tok-ghijkl", "ttlSeconds": 600}}' }
      end
      return { body = LOOKUP }
    end, { username = false, password = false, client_key = "deadline-key-2", client_secret = "secret-2",
           timeout_ms = 2000, clock = function() return clock.now end }, clock)
    local r, err = c2:v2_customer_lookup { mobile = "1" }
    assert.is_nil(r)
    assert.equals("timeout", err.kind)
    assert.is_true(err.deadline_reached)
  end)

  describe("over libcurl (exchange, transport and multi paths)", function()
    local srv
    lazy_setup(function() srv = script.start() end)
    lazy_teardown(function() if srv then srv.stop() end end)

    local function real(extra)
      local opts = { base_url = srv.url, username = "till", password = "secret-1", max_attempts = 3,
                     sleep = function() end }
      for k, v in pairs(extra or {}) do opts[k] = v end
      return assert(loyalty.client(opts))
    end

    it("a hanging CRM costs one deadline, not attempts x timeout", function()
      srv.reply { delay_ms = 3000, body = LOOKUP }
      local c = real { timeout_ms = 400 }
      for _, spec in ipairs {
        { method = "GET", path = "/v2/customers/lookup" },                            -- session:exchange
        { method = "GET", path = "/v2/customers/lookup", headers = { ["X-A"] = "1" } }, -- transport:send
      } do
        local t0 = core.now()
        local r, err = c:request(spec)
        local took = core.now() - t0
        assert.is_nil(r)
        assert.equals("timeout", err.kind)
        assert.is_true(err.deadline_reached)
        assert.equals(1, err.attempts)
        assert.is_true(took < 2.5, "took " .. took) -- 3 attempts of the old 10 s would be far beyond
      end
      c:close()
    end)

    it("per-request timeouts in request_many (perform_multi)", function()
      srv.reply { delay_ms = 3000, body = LOOKUP }
      local c = real { timeout_ms = 300 }
      local t0 = core.now()
      local out = c:request_many({ { method = "GET", path = "/v2/a" } }, 1)
      assert.is_true(core.now() - t0 < 2.5)
      assert.equals("timeout", out[1].err.kind)
      assert.equals(1, out[1].err.attempts) -- no retry round could finish inside the batch's deadline
      assert.is_true(out[1].err.deadline_reached)
      c:close()
    end)

    it("a decode error's raw text is scrubbed before it is cut (exchange path)", function()
      local basic = core.basic_auth("till", "secret-1"):sub(7)
      srv.reply { body = ("x"):rep(2040) .. basic .. "tail" }
      local c = real { max_attempts = 1 }
      local _, err = c:request { method = "GET", path = "/v2/x" }
      assert.equals("decode", err.kind)
      assert.equals(2048, #err.raw)
      assert.is_nil(err.raw:find(basic:sub(1, 6), 1, true))
      c:close()
    end)
  end)
end)

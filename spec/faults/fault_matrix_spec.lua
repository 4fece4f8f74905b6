-- The fault matrix: for each way the CRM or the network can fail, an order placed during the
-- fault gets a typed answer (posted, queued, or a typed error), nothing raises, and after
-- recovery and a drain the CRM has the order exactly once (checked in the sandbox's state).
local loyalty = require "loyalty"
local errors = require "loyalty.errors"
local support = require "support.sandbox"
local drainer = require "loyalty.outbox.drainer"
local proc = require "outbox.helpers.proc"
local socket = require "socket"

local TOM = { mobile = "919999000001", firstname = "Tom" }
local TX = "/v1.1/transaction/add"

local function order(id)
  return { id = id, total = 1500, gross = 1500,
           lines = { { sku = "SK-TSHIRT-M", qty = 3, price = 500, amount = 1500, categories = { "fashion" } } } }
end

-- A listening socket whose accept queue is full: connects to it hang until they time out
-- (stands in for a non-routable address, which a loopback-only test cannot use).
local function blackhole()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  assert(s:listen(0))
  local _, port = s:getsockname()
  local fillers = {}
  for i = 1, 3 do
    local c = socket.tcp()
    c:settimeout(0)
    c:connect("127.0.0.1", port)
    fillers[i] = c
  end
  socket.sleep(0.05)
  return { port = tonumber(port), close = function()
    for _, c in ipairs(fillers) do c:close() end
    s:close()
  end }
end

describe("fault matrix", function()
  local sb, dir, n = nil, nil, 0
  local hole

  lazy_setup(function()
    sb = support.start()
    dir = proc.tmpdir()
    hole = blackhole()
  end)
  lazy_teardown(function()
    if hole then hole.close() end
    if sb then sb:stop() end
    proc.rmdir(dir)
  end)
  before_each(function() assert(sb:reset()) end)

  local function settings(path, crm)
    local c = { base_url = sb.url, username = "store.server", password = "server123", sleep = function() end,
                max_attempts = 2, timeout_ms = 2000, connect_timeout_ms = 1000 }
    for k, v in pairs(crm or {}) do c[k] = v end
    return { crm = c, outbox = { backend = "sqlite", path = path } }
  end

  -- Places the order under the fault; returns what order_placed returned.
  local function place_during_fault(c, bill)
    n = n + 1
    local path = dir .. "/fm" .. n .. ".db"
    local p = assert(loyalty.program(settings(path, c.crm)))
    if c.setup then c.setup(p) end
    if c.fault then
      local f = { match = TX }
      for k, v in pairs(c.fault) do f[k] = v end
      assert(sb:faults(f))
    end
    local t0 = socket.gettime()
    local ok, r, err = pcall(p.order_placed, p, TOM, order(bill))
    assert(ok, "order_placed raised: " .. tostring(r))
    if c.max_s then
      local took = socket.gettime() - t0
      assert(took < c.max_s, c.name .. ": order_placed took " .. took .. " s")
    end
    -- A drain during the fault backs off without raising.
    local t = assert(drainer.run(p, p.outbox, { sleep = function() end }))
    assert.is_number(t.claimed)
    p:close()
    return r, err, path
  end

  -- After recovery: a drainer with working settings replays what is due (later in time).
  local function recover(path)
    assert(sb:clear_faults())
    local p = assert(loyalty.program(settings(path)))
    local later = p.outbox.clock() + 3600
    assert(drainer.run(p, p.outbox, { clock = function() return later end, sleep = function() end }))
    local st = assert(p.outbox:status())
    p:close()
    return st
  end

  local CASES = {
    { name = "connect refused", crm = { base_url = "http://127.0.0.1:" .. proc.free_port() }, kind = "network" },
    { name = "connect timeout", crm = { connect_timeout_ms = 150 }, kind = "timeout",
      setup = function(p) p.client.base_url = "http://127.0.0.1:" .. hole.port end },
    { name = "read timeout (the CRM answers after the client gave up)", crm = { timeout_ms = 300 },
      fault = { action = "delay", ms = 800, count = 1 } },
    { name = "connection reset", fault = { action = "drop", count = 5 }, kind = "network" },
    { name = "HTTP 500", fault = { status = 500, count = 5 }, kind = "http" },
    { name = "HTTP 502", fault = { status = 502, count = 5 }, kind = "http" },
    { name = "HTTP 503", fault = { status = 503, count = 5 }, kind = "http" },
    { name = "HTTP 520", fault = { status = 520, count = 5 }, kind = "http" },
    { name = "HTTP 521 (customer lock)", fault = { status = 521, count = 5 }, kind = "http" },
    { name = "HTTP 429 with Retry-After", fault = { status = 429, retry_after = 1, count = 5 }, kind = "rate_limited" },
    { name = "malformed JSON", fault = { action = "malformed", count = 5 }, kind = "decode" },
    { name = "truncated JSON", fault = { action = "truncated", count = 5 } },
    { name = "empty 200", fault = { action = "empty", count = 5 }, kind = "decode" },
    { name = "200 whose body reports a temporary failure (887)",
      fault = { action = "body_failure", code = 887, count = 5 }, kind = "api" },
    { name = "faults that clear within the client's retries", fault = { status = 503, count = 1 }, direct = true },
    -- One deadline per call (timeout_ms = 2000 here): never attempts x timeout, never a long sleep.
    { name = "429 with Retry-After: 999999999", fault = { status = 429, retry_after = 999999999, count = 5 },
      kind = "rate_limited", max_s = 2.5 },
    { name = "a CRM that hangs past the deadline", crm = { timeout_ms = 500, max_attempts = 3 },
      fault = { action = "delay", ms = 1500, count = 3 }, kind = "timeout", max_s = 1.4 },
    -- Reply shapes: a 200 the client cannot read is an unknown outcome, queued and replayed once.
    { name = "a 200 with wrong JSON types", kind = "decode",
      fault = { action = "body", count = 5, body = '{"response": {"status": {"success": true, "code": 200},' ..
                '"transactions": {"transaction": [5]}}}' } },
    { name = "a 200 whose numbers are beyond a double (1e400)", kind = "decode",
      fault = { action = "body", count = 5, body = '{"response": {"status": {"success": true, "code": 200},' ..
                '"transactions": {"transaction": {"customer": {"loyalty_points": 1e400}}}}}' } },
    { name = "a 200 whose side effects are not a list", kind = "decode",
      fault = { action = "body", count = 5, body = '{"response": {"status": {"success": true, "code": 200},' ..
                '"transactions": {"transaction": {"side_effects": 5, "item_status": {"warnings": "boom"}}}}}' } },
  }

  for i, c in ipairs(CASES) do
    it(c.name .. ": typed answer, then exactly once in the CRM", function()
      local bill = "FM-" .. i
      local r, err, path = place_during_fault(c, bill)
      if c.direct then
        assert.is_number(assert(r).points_earned)
      else
        assert.is_table(r, "expected a result, got " .. tostring(err))
        if r.queued then
          assert.is_true(errors.is_error(r.crm_error))
          if c.kind then assert.equals(c.kind, r.crm_error.kind) end
          if c.max_s then assert.is_true(r.crm_error.deadline_reached) end
          assert.is_true(r.crm_error.kind ~= "config")
        else
          -- The CRM took it after all (a retry found the bill: 604 on the retry).
          assert.is_true(r.duplicate or r.points_earned ~= nil)
        end
      end
      local st = recover(path)
      assert.equals(0, st.counts.pending)
      assert.equals(0, st.counts.dead)
      -- A delayed request may still be running in the sandbox: wait for it to settle.
      if c.fault and c.fault.action == "delay" then socket.sleep(c.fault.ms / 1000 + 0.2) end
      assert.equals(1, sb:bills(bill))
    end)
  end

  it("a 200 whose body reports a refusal: a typed error with the order id, nothing queued", function()
    local r, err, path = place_during_fault({ fault = { action = "body_failure", code = 500, count = 1 } }, "FM-R")
    assert.is_nil(r)
    assert.equals("api", err.kind)
    assert.equals("FM-R", err.order_id)
    local st = recover(path)
    assert.equals(0, st.counts.pending + st.counts.delivered)
    assert.equals(0, sb:bills("FM-R"))
  end)

  it("an expired OAuth token: regenerated once, the order posted once", function()
    local s = settings(dir .. "/oauth.db", { username = false })
    s.crm.username, s.crm.password = nil, nil
    s.crm.client_key, s.crm.client_secret = support.SHORT_KEY, support.SHORT_SECRET
    local p = assert(loyalty.program(s))
    assert(p:summary(TOM)) -- gets a token with a 2-second TTL
    local frozen = p.client.clock()
    p.client.clock = function() return frozen end -- the client still believes its token is fresh
    socket.sleep(2.2)
    local r = assert(p:order_placed(TOM, order("FM-T")))
    assert.is_nil(r.queued)
    assert.is_number(r.points_earned)
    p:close()
    assert.equals(1, sb:bills("FM-T"))
  end)

  it("shopper-facing reads answer within shopper_timeout_ms while the CRM hangs", function()
    local s = settings(dir .. "/shopper.db")
    s.shopper_timeout_ms = 300
    local p = assert(loyalty.program(s))
    assert(sb:faults { match = "/v1.1/customer/get", action = "delay", ms = 1500, count = 6 })
    for _, read in ipairs {
      function() return p:summary(TOM) end,
      function() return p:quote_redemption(TOM, { lines = order("x").lines, total = 1500 }, 100) end,
    } do
      local t0 = socket.gettime()
      local r, err = read()
      local took = socket.gettime() - t0
      assert.is_nil(r)
      assert.equals("timeout", err.kind)
      assert.is_true(err.deadline_reached)
      assert.is_true(took < 1.2, "took " .. took .. " s")
    end
    p:close()
    socket.sleep(1.6) -- let the delayed lookups finish before the next reset
  end)

  it("empty and 1-byte secrets: a typed answer, no hang, messages intact", function()
    for _, pw in ipairs { "", "x" } do
      local p = assert(loyalty.program(settings(dir .. "/empty" .. #pw .. ".db", { password = pw })))
      local r, err = p:order_placed(TOM, order("FM-E" .. #pw))
      assert.is_nil(r)
      assert.equals("auth", err.kind)
      assert.is_nil(tostring(err):find("[REDACTED]", 1, true))
      p:close()
    end
  end)

  it("secrets never appear in errors from any fault", function()
    local p = assert(loyalty.program(settings(dir .. "/sec.db", { max_attempts = 1 })))
    local seen = {}
    for _, f in ipairs { { status = 401 }, { status = 500 }, { action = "malformed" }, { action = "drop" } } do
      f.match, f.count = TX, 1
      assert(sb:faults(f))
      local r, err = p:order_placed(TOM, order("FM-S" .. #seen))
      seen[#seen + 1] = tostring(err) .. tostring(r and r.crm_error)
    end
    p:close()
    local core = require "loyalty.core"
    local text = table.concat(seen, "\n")
    for _, secret in ipairs { "server123", core.md5_hex("server123"), core.basic_auth("store.server", "server123") } do
      assert.is_nil(text:find(secret, 1, true))
    end
  end)
end)

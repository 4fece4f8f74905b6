-- Property-style: every reply the sandbox gives to every typed operation and program flow is
-- recorded, then replayed with each field (at every depth) replaced by each JSON type and some
-- nested nonsense. Every call must return a result or `nil, err` (a loyalty error whose tostring
-- works, a decode error naming the field with the request id), never raise; numbers in
-- program results are finite.
local loyalty = require "loyalty"
local errors = require "loyalty.errors"
local cjson = require "cjson.safe"
local support = require "support.sandbox"
local token_store = require "loyalty.token_store"

local INF = "\1inf\1"
local DEEP = {}
do
  local t = DEEP
  for _ = 1, 40 do t.a = {} t = t.a end
end
local VALUES = { cjson.null, true, false, 0, -1, 1.5, 123456789012345678901234567890, INF, "", "boom", "1e400",
                 {}, { 5 }, { "x", { y = cjson.null } }, { { {} } }, { customer = { 5 } }, DEEP }

local function describe_value(v)
  if v == INF then return "1e400" end
  if v == DEEP then return "deep" end
  local s = cjson.encode(v)
  return s and s:sub(1, 30) or tostring(v)
end

local function encode(v)
  local text = assert(cjson.encode(v))
  return (text:gsub('"\\u0001inf\\u0001"', "1e400"))
end

-- Every (path, value) replacement of a decoded body, root included; arrays: first two elements.
local function mutations(body, max)
  local out = {}
  for _, v in ipairs(VALUES) do out[#out + 1] = { path = "(root)", text = encode(v), value = v } end
  local function walk(node, path, depth)
    if depth > 7 or #out >= max then return end
    local keys = {}
    if node[1] ~= nil then
      for i = 1, math.min(#node, 2) do keys[#keys + 1] = i end
    else
      for k in pairs(node) do keys[#keys + 1] = k end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    end
    for _, k in ipairs(keys) do
      local child = node[k]
      for _, v in ipairs(VALUES) do
        node[k] = v
        out[#out + 1] = { path = path .. "." .. tostring(k), text = encode(body), value = v }
      end
      node[k] = child
      if type(child) == "table" then walk(child, path .. "." .. tostring(k), depth + 1) end
    end
  end
  if type(body) == "table" then walk(body, "", 1) end
  return out
end

-- A transport that records what a real one (the sandbox) answers, keyed by method and path.
local function recorder(real)
  local rec = { order = {}, by_key = {} }
  function rec.send(_, req)
    local res, err = real:send(req)
    local key = req.method .. " " .. req.url:gsub("%?.*$", ""):gsub("^https?://[^/]+", "")
    if res and not rec.by_key[key] then
      rec.by_key[key] = { status = res.status, body = res.body }
      rec.order[#rec.order + 1] = key
    end
    return res, err
  end
  function rec.close() real:close() end
  return rec
end

-- Replays recorded replies, the one under `key` replaced by `text`.
local function replayer(rec, key, text, status)
  local t = { n = 0 }
  function t.send(_, req)
    t.n = t.n + 1
    local k = req.method .. " " .. req.url:gsub("%?.*$", ""):gsub("^https?://[^/]+", "")
    local r = rec.by_key[k]
    local headers = { ["x-cap-request-id"] = "RID-" .. t.n, ["x-request-id"] = "RID-" .. t.n } -- each provider's
    if k == key then return { status = status or r.status, headers = headers, body = text } end
    if not r then return { status = 404, headers = headers, body = "{}" } end
    return { status = r.status, headers = headers, body = r.body }
  end
  function t.close() end
  return t
end

local function finite_numbers(v, path, seen)
  seen = seen or {}
  if type(v) == "number" then
    assert(v == v and v ~= math.huge and v ~= -math.huge, "non-finite number at " .. path)
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      if k ~= "body" and k ~= "items" and k ~= "raw" and k ~= "errors" then -- raw reply text, not read
        finite_numbers(x, path .. "." .. tostring(k), seen)
      end
    end
  end
end

-- Checks one outcome of a call under a mutated reply.
local function check(label, numbers, ok, r, err)
  assert(ok, label .. ": raised: " .. tostring(r))
  if r == nil then
    assert(errors.is_error(err), label .. ": nil without a loyalty error: " .. tostring(err))
    local text = tostring(err)
    assert(type(text) == "string", label .. ": tostring(err) is not a string")
    assert(not err.unchecked, label .. ": a read site did not check the field: " .. text)
    if err.kind == "decode" and err.field then
      assert(err.request_id ~= nil, label .. ": decode error without the request id: " .. text)
    end
  else
    assert(type(r) == "table", label .. ": result is not a table")
    if numbers then finite_numbers(r, label) end
  end
  return r == nil and err.kind or "result"
end

local function run_cases(rec, make, fn, numbers, max)
  local stats, total = {}, 0
  for _, key in ipairs(rec.order) do
    local body = cjson.decode(rec.by_key[key].body)
    local cases = mutations(body, max or 400)
    for _, status in ipairs { 400, 429, 500 } do
      cases[#cases + 1] = { path = "(status " .. status .. ")", text = rec.by_key[key].body, status = status }
    end
    for _, m in ipairs(cases) do
      local target = make(replayer(rec, key, m.text, m.status))
      local label = key .. " " .. m.path .. " = " .. (m.value ~= nil and describe_value(m.value) or m.text:sub(1, 40))
      local outcome = check(label, numbers, pcall(fn, target))
      stats[outcome] = (stats[outcome] or 0) + 1
      total = total + 1
    end
  end
  if os.getenv("SHAPES_VERBOSE") then
    local parts = {}
    for k, n in pairs(stats) do parts[#parts + 1] = k .. "=" .. n end
    io.stderr:write(table.concat(rec.order, ", "), ": ", total, " cases (", table.concat(parts, " "), ")\n")
  end
  return total, stats
end

describe("reply shapes named in the issue", function()
  local fake = require "support.fake_transport"
  local function client(body, status)
    return assert(loyalty.client { base_url = "http://crm.test", username = "till", password = "secret-1",
      max_attempts = 1, transport = fake.new(function()
        return { status = status or 200, headers = { ["x-cap-request-id"] = "RID-9" }, body = body }
      end) })
  end
  local function v11(inner)
    return '{"response": {"status": {"success": true, "code": 200, "message": "ok"}, ' .. inner .. '}}'
  end

  it("wrong types are decode errors naming the field, with the request id", function()
    for _, case in ipairs {
      { v11 '"customers": 5', "customer_get", "customers" },
      { v11 '"customers": {"customer": [5]}', "customer_get", "customers.customer[1]" },
      { v11 '"customers": {"customer": {"item_status": {"success": true, "warnings": 5}}}', "customer_get",
        "item_status.warnings" },
      { v11 '"customers": {"customer": {"item_status": {"success": true, "warnings": "boom"}}}', "customer_get",
        "item_status.warnings" },
      { v11 '"transactions": {"transaction": [5]}', "transaction_get", "transactions.transaction[1]" },
      { v11 '"transactions": {"transaction": {"side_effects": 5}}', "transaction_get",
        "transactions.transaction[1].side_effects" },
      { v11 '"subscriptions": 5', "customer_subscriptions", "subscriptions" },
    } do
      local c = client(case[1])
      local args = { mobile = "1" }
      if case[2] == "transaction_get" then args = { number = "B1" } end
      if case[2] == "customer_subscriptions" then args = { { mobile = "1", channel = "email" } } end
      local r, err = c[case[2]](c, args)
      assert.is_nil(r, case[1])
      assert.equals("decode", err.kind)
      assert.equals(case[3], err.field)
      assert.equals("RID-9", err.request_id)
      assert.matches(case[3], tostring(err), 1, true)
    end
  end)

  it("a singular child given as an object or as a one-element array reads the same (capillary.md §3.2)", function()
    for _, customer in ipairs { '{"mobile": "1", "transactions": {"transaction": {"number": "B1"}}}',
                                '[{"mobile": "1", "transactions": {"transaction": [{"number": "B1"}]}}]' } do
      local c = client(v11('"customer": ' .. customer))
      local r = assert(c:customer_transactions { mobile = "1" })
      assert.equals("1", r.customer.mobile)
      assert.equals("B1", r.transactions[1].number)
    end
    local c = client(v11 '"customer": [5]')
    local r, err = c:customer_transactions { mobile = "1" }
    assert.is_nil(r)
    assert.equals("customer[1]", err.field)
  end)

  it("JSON 1e400 is an error, never inf; a non-text v2 message still prints", function()
    local c = client(v11 '"customers": {"customer": {"loyalty_points": 1e400}}')
    local r, err = c:customer_get { mobile = "1" }
    assert.is_nil(r)
    assert.equals("decode", err.kind)
    c = client('{"errors": [{"code": 500, "message": {"nested": [1, 2]}}]}', 400)
    r, err = c:v2_customer_lookup { mobile = "1" }
    assert.is_nil(r)
    assert.is_string(tostring(err))
    -- through the program: a numeric string out of range is a decode error too, not inf points
    local p = assert(loyalty.program { crm = { base_url = "http://crm.test", username = "till", password = "secret-1",
      max_attempts = 1, transport = fake.new(function()
        return { body = v11 '"customers": {"customer": {"mobile": "1", "loyalty_points": "1e400"}}' }
      end) } })
    r, err = p:summary { mobile = "1" }
    assert.is_nil(r)
    assert.equals("customer.loyalty_points", err.field)
  end)
end)

describe("reply shapes", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  local TOM = support.TOM

  local function client_opts(transport, extra)
    local o = { base_url = sb.url, username = "store.server", password = "server123", transport = transport,
                sleep = function() end, max_attempts = 1 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  local CAPILLARY_OPS = {
    { "customer_get", function(c) return c:customer_get { mobile = TOM.mobile, points_summary = true,
                                                          subscriptions = true } end },
    { "customer_add", function(c) return c:customer_add { mobile = "919999111222", firstname = "New" } end },
    { "customer_update", function(c) return c:customer_update { mobile = TOM.mobile, firstname = "Tom" } end },
    { "customer_subscriptions", function(c)
      return c:customer_subscriptions { { mobile = TOM.mobile, channel = "email", priority = "BULK", scope = "all",
                                          is_subscribed = "1" } } end },
    { "transaction_add", function(c)
      return c:transaction_add { number = "RS-1", amount = 100, type = "regular", customer = { mobile = TOM.mobile },
                                 line_items = { line_item = { { serial = 1, item_code = "A", qty = 1, rate = 100,
                                                                 value = 100, amount = 100 } } } } end },
    { "transaction_get", function(c) return c:transaction_get { number = "RS-1" } end },
    { "customer_transactions", function(c) return c:customer_transactions { mobile = TOM.mobile } end },
    { "points_isredeemable", function(c) return c:points_isredeemable {
      mobile = TOM.mobile, points = 100, program_id = 1016 } end },
    { "points_validation_code", function(c) return c:points_validation_code { mobile = TOM.mobile, points = 100 } end },
    { "points_redeem", function(c)
      return c:points_redeem({ points_redeemed = 100, customer = { mobile = TOM.mobile },
                               external_reference_number = "RS-R1" }, { skip_validation = "true" }) end },
    { "coupon_isredeemable", function(c) return c:coupon_isredeemable { mobile = TOM.mobile, code = "X" } end },
    { "v2_customer_lookup", function(c)
      return c:v2_customer_lookup { source = "INSTORE", identifierName = "mobile", identifierValue = TOM.mobile } end },
    { "v2_customer_get", function(c) return c:v2_customer_get(343445001) end },
    { "v2_transaction_add", function(c)
      return c:v2_transaction_add({ billNumber = "RS-V2", type = "REGULAR", billAmount = 100 },
                                  { source = "INSTORE", identifierName = "mobile", identifierValue = TOM.mobile })
    end },
    { "v2_points_reverse", function(c) return c:v2_points_reverse { redemptionId = "x", pointsToBeReversed = 1 } end },
    { "v2_otp_generate", function(c)
      return c:v2_otp_generate { action = "POINTS", entityType = "mobile", entityValue = TOM.mobile } end },
    { "v2_otp_validate", function(c)
      return c:v2_otp_validate { action = "POINTS", code = "1", entityType = "mobile", entityValue = TOM.mobile } end },
  }

  it("every Capillary typed operation: a result or nil, err for every field of every type", function()
    local total = 0
    for _, op in ipairs(CAPILLARY_OPS) do
      local rec = recorder(require("loyalty.transport.curl").new {})
      op[2](assert(loyalty.client(client_opts(rec))))
      assert(#rec.order > 0, op[1] .. " recorded nothing")
      local n = run_cases(rec, function(t) return assert(loyalty.client(client_opts(t))) end, op[2], false, 300)
      total = total + n
    end
    assert.is_true(total > 2000)
  end)

  it("every CRM.COM typed operation: a result or nil, err for every field of every type", function()
    local MARIA = { number = "RP0000000019" }     -- rewards_participants/show names the participant
    local MARIA_AR = { account = "ACR0000000164" } -- R17 events name her accounts receivable
    local LINES = { { code = "COFFEE-L", quantity = 1, total = 4.76 } }
    local function opts(t)
      return { provider = "crmcom", base_url = sb.url .. "/crmapi/rest/v2", username = "pos.user", password = "pos123",
               organisation = "SANDBOXORG", unit = "UNIT-LIMASSOL", token_store = token_store.private(),
               transport = t, sleep = function() end, max_attempts = 1 }
    end
    local setup = assert(loyalty.client(opts(require("loyalty.transport.curl").new {})))
    local p = assert(setup:purchase_create { participant = MARIA_AR, lines = LINES, reference = "RS-CC1" }).purchase
    for _, op in ipairs {
      function(c) return c:participant_show(MARIA) end,
      function(c) return c:purchase_preview { participant = MARIA_AR, lines = LINES } end,
      function(c) return c:purchase_create { participant = MARIA_AR, lines = LINES, reference = "RS-CC2" } end,
      function(c) return c:purchase_show { number = p.number } end,
      function(c) return c:purchases_list { participant = MARIA_AR, number_of_results = 2 } end,
      function(c) return c:spend_request_create { participant = MARIA_AR, purchase = { number = p.number }, amount = 1,
                                                  reference = "RS-SP1" } end,
      function(c) return c:products_synchronise({ { code = "A" }, { code = "B" } },
                                                  { batch_size = 1, definition = { name = "PRODUCTS" } }) end,
      function(c) return c:purchase_cancel { number = p.number } end,
    } do
      local rec = recorder(require("loyalty.transport.curl").new {})
      op(assert(loyalty.client(opts(rec))))
      assert(#rec.order > 0)
      run_cases(rec, function(t) return assert(loyalty.client(opts(t))) end, op, true, 300)
    end
  end)

  it("the OAuth token reply: every shape gives a result or nil, err", function()
    local rec = recorder(require("loyalty.transport.curl").new {})
    local function opts(t)
      return client_opts(t, { username = false, password = false, client_key = support.OAUTH_KEY,
                              client_secret = support.OAUTH_SECRET, token_store = token_store.private() })
    end
    local function strip(o)
      for k, v in pairs(o) do if v == false then o[k] = nil end end
      return o
    end
    local op = function(c) return c:v2_customer_lookup { source = "INSTORE", identifierName = "mobile",
                                                          identifierValue = TOM.mobile } end
    assert(op(assert(loyalty.client(strip(opts(rec))))))
    run_cases(rec, function(t) return assert(loyalty.client(strip(opts(t)))) end, op, false, 300)
  end)

  describe("program flows", function()
    local ORDER = { id = "RS-O1", total = 1500, gross = 1500, redemption = { id = "RD1", points = 10, value = 10 },
                    lines = { { sku = "SK-TSHIRT-M", name = "Basic Tee", qty = 3, price = 500, amount = 1500 } } }
    local CART = { lines = { { sku = "SK-TSHIRT-M", qty = 1, price = 500, amount = 500 } }, total = 500 }
    local USER = { mobile = TOM.mobile, firstname = "Tom", email = TOM.email }

    local CAPILLARY_FLOWS = {
      { "summary", function(p) return p:summary(USER) end },
      { "login", function(p) return p:login(USER) end },
      { "quote_redemption", function(p) return p:quote_redemption(USER, CART, 100) end },
      { "send_otp", function(p) return p:send_otp(USER, 100) end, { skip_redemption_otp = false } },
      { "redeem", function(p) return p:redeem(USER, { points = 100, order_id = "RS-O2", cart = CART }) end },
      { "order_placed", function(p) return p:order_placed(USER, ORDER) end },
      { "order_returned", function(p) return p:order_returned(USER, ORDER) end },
      { "order_returned lines", function(p)
        return p:order_returned(USER, ORDER, { lines = { { sku = "SK-TSHIRT-M", qty = 1, amount = 500 } } }) end },
      { "register", function(p) return p:register { mobile = "919999111333", firstname = "N" } end },
      { "subscribe", function(p) return p:subscribe(USER, { email = true, sms = false }) end },
    }

    local function program(transport, extra)
      local s = { crm = { base_url = sb.url, username = "store.server", password = "server123",
                          transport = transport, sleep = function() end, max_attempts = 1 },
                  skip_redemption_otp = true }
      for k, v in pairs(extra or {}) do s[k] = v end
      return assert(loyalty.program(s))
    end

    for _, flow in ipairs(CAPILLARY_FLOWS) do
      it("Capillary " .. flow[1] .. ": every reply shape gives a result or nil, err", function()
        if flow[1]:match("^order_returned") then
          assert(CAPILLARY_FLOWS[6][2](program(require("loyalty.transport.curl").new {}))) -- the order to return
        end
        local rec = recorder(require("loyalty.transport.curl").new {})
        local make = function(t) return program(t, flow[3]) end
        flow[2](make(rec))
        assert(#rec.order > 0)
        run_cases(rec, make, flow[2], true, 400)
      end)
    end

    local MARIA = { mobile = "+357 99 000019", firstname = "Maria" }
    local CRMCOM_FLOWS = {
      { "summary", function(p) return p:summary(MARIA) end },
      { "login", function(p) return p:login(MARIA) end },
      { "quote_redemption", function(p) return p:quote_redemption(MARIA, CART, 5) end },
      { "redeem", function(p) return p:redeem(MARIA, { points = 5, order_id = "RS-C1", cart = CART }) end },
      { "order_placed", function(p)
        return p:order_placed(MARIA, { id = "RS-C2", lines = CART.lines, total = 500 }) end },
      { "order_returned", function(p) return p:order_returned(MARIA, { id = "RS-C2", lines = CART.lines }) end },
    }
    local function crmcom_program(transport)
      return assert(loyalty.program {
        provider = "crmcom",
        crm = { base_url = sb.url .. "/crmapi/rest/v2", username = "pos.user", password = "pos123",
                organisation = "SANDBOXORG", unit = "UNIT-LIMASSOL", token_store = token_store.private(),
                transport = transport, sleep = function() end, max_attempts = 1 },
      })
    end
    for _, flow in ipairs(CRMCOM_FLOWS) do
      it("CRM.COM " .. flow[1] .. ": every reply shape gives a result or nil, err", function()
        local rec = recorder(require("loyalty.transport.curl").new {})
        if flow[1] == "order_returned" then
          assert(CRMCOM_FLOWS[5][2](crmcom_program(require("loyalty.transport.curl").new {})))
        end
        flow[2](crmcom_program(rec))
        assert(#rec.order > 0)
        run_cases(rec, crmcom_program, flow[2], true, 400)
      end)
    end
  end)
end)

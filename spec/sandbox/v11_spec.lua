-- v1.1 customer and transaction endpoints of the sandbox, over HTTP.
local support = require("support.sandbox")

describe("sandbox v1.1 customers and transactions", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  it("customer/get returns the documented wrapped array shape with the requested flags", function()
    local r = sb:get("/v1.1/customer/get?format=json&mobile=919999000001&points_summary=true&user_id=true"
      .. "&subscriptions=true&transactions=true")
    assert.equal(200, r.status)
    assert.truthy(r.headers["x-cap-requestid"])
    local st = r.json.response.status
    assert.same({ "true", 200, "Success", "1", "1" }, { st.success, st.code, st.message, st.total, st.success_count })
    local c = r.json.response.customers.customer[1]
    assert.equal("Tom", c.firstname)
    assert.equal(2000, c.loyalty_points)
    assert.equal("silver", c.current_slab)
    assert.is_number(c.user_id)
    assert.equal("1016", c.points_summaries.points_summary[1].programId)
    assert.equal("2000", c.points_summaries.points_summary[1].loyaltyPoints)
    assert.equal("SMS", c.subscriptions.subscription[1].channel)
    assert.same({}, c.transactions.transaction)
    assert.same({ success = "true", code = "1000", message = "Customer successfully retrieved",
      warnings = { warning = {} } }, c.item_status)
    assert.equal("store.one", c.registered_store.code)
  end)

  it("customer/get for an unknown customer answers item code 1012 and success \"false\"", function()
    local r = sb:get("/v1.1/customer/get?mobile=910000000000")
    assert.equal(200, r.status)
    assert.equal("false", r.json.response.status.success)
    assert.equal("0", r.json.response.status.success_count)
    local item = r.json.response.customers.customer[1]
    assert.equal("1012", item.item_status.code)
    assert.equal("false", item.item_status.success)
  end)

  it("customer/get with several identifiers reports a partial success", function()
    local r = sb:get("/v1.1/customer/get?mobile=919999000001,910000000000")
    assert.equal(201, r.json.response.status.code)
    assert.equal("2", r.json.response.status.total)
    assert.equal("1", r.json.response.status.success_count)
  end)

  it("customer/add registers (object form) and upserts an existing identifier", function()
    local r = sb:post("/v1.1/customer/add?format=json", { root = { customer = {
      mobile = "44700900000", email = "new@example.com", firstname = "Ann", lastname = "Lee",
      custom_fields = { field = { { name = "FavoriteColor", value = "Blue" } } } } } })
    assert.equal(200, r.status)
    local c = r.json.response.customers.customer[1]
    assert.equal(1000, c.item_status.code)
    assert.equal("Customer registration successful", c.item_status.message)
    assert.equal(1, r.json.response.status.total)
    local id = c.user_id
    r = sb:post("/v1.1/customer/add", { root = { customer = { { mobile = "44700900000", external_id = "ANN1",
      lastname = "Lee-Smith" } } } })
    c = r.json.response.customers.customer[1]
    assert.equal(id, c.user_id)
    assert.equal("Lee-Smith", c.lastname)
    assert.equal("ANN1", c.external_id)
    assert.equal("new@example.com", c.email)
    local state = sb:state()
    local found = 0
    for _, cust in ipairs(state.customers) do if cust.mobile == "44700900000" then found = found + 1 end end
    assert.equal(1, found)
  end)

  it("customer/add fails items without identifiers and with conflicting ones", function()
    local r = sb:post("/v1.1/customer/add", { root = { customer = {
      { firstname = "Nobody" },
      { mobile = "919999000001", email = "rita.john@example.com" },
      { mobile = "12" } } } })
    local items = r.json.response.customers.customer
    assert.equal(1007, items[1].item_status.code)
    assert.equal(1016, items[2].item_status.code)
    assert.equal(1001, items[3].item_status.code)
    assert.equal(500, r.json.response.status.code)
  end)

  it("customer/update changes names and fields with the documented string codes", function()
    local r = sb:post("/v1.1/customer/update?format=json", { root = { customer = { mobile = "917713643123",
      firstname = "Rita B", extended_fields = { field = { { name = "city", value = "Pune" } } } } } })
    local st = r.json.response.status
    assert.same({ "true", 200, "1", "1" }, { st.success, st.code, st.total, st.success_count })
    local c = r.json.response.customers.customer[1]
    assert.equal("Rita B", c.firstname)
    assert.equal("1000", c.item_status.code)
    assert.equal("Customer successfully updated", c.item_status.message)
    assert.same({ { name = "city", value = "Pune" } }, c.extended_fields.field)
    r = sb:post("/v1.1/customer/update", { root = { customer = { mobile = "910000000009", firstname = "X" } } })
    assert.equal("false", r.json.response.status.success)
    assert.equal("1012", r.json.response.customers.customer[1].item_status.code)
  end)

  it("customer/subscriptions updates and echoes is_subscribed", function()
    local r = sb:post("/v1.1/customer/subscriptions?format=json", { root = { subscription = {
      { email = "tom@example.com", priority = "bulk", scope = "all", channel = "email", is_subscribed = "1" },
      { email = "tom@example.com", priority = "bulk", scope = "all", channel = "fax", is_subscribed = "1" } } } })
    local subs = r.json.response.subscriptions.subscription
    assert.same({ "EMAIL", "BULK", "ALL", "1", "1000" },
      { subs[1].channel, subs[1].priority, subs[1].scope, subs[1].is_subscribed, subs[1].item_status.code })
    assert.equal("1101", subs[2].item_status.code)
    local g = sb:get("/v1.1/customer/get?email=tom@example.com&subscriptions=true")
    for _, s in ipairs(g.json.response.customers.customer[1].subscriptions.subscription) do
      if s.channel == "EMAIL" and s.priority == "BULK" then assert.equal("1", s.status) end
    end
  end)

  local function bill(number, amount, customer, extra)
    local t = { type = "regular", number = number, amount = amount, billing_time = "2026-01-02 10:00:00",
      customer = customer or { mobile = "919999000001" } }
    for k, v in pairs(extra or {}) do t[k] = v end
    return sb:post("/v1.1/transaction/add?format=json", { root = { transaction = t } })
  end

  it("transaction/add earns per programme and tier, with the documented shape (points only in the balance)", function()
    local r = bill("BILL99", 18000, nil, {
      line_items = { line_item = {
        { serial = 1, item_code = "SKU1", amount = 12000, qty = 1, rate = 12000,
          attributes = { attribute = { name = "category", value = "shoes" } } },
        { serial = 2, item_code = "SKU2", amount = 6000, qty = 2, rate = 3000 } } },
      custom_fields = { field = { { name = "channel", value = "web" } } } })
    assert.equal(200, r.status)
    local st = r.json.response.status
    assert.same({ "true", 200, "Success" }, { st.success, st.code, st.message })
    local t = r.json.response.transactions.transaction[1]
    assert.same({ success = "true", code = 600, message = "Transaction added successfully" }, t.item_status)
    assert.is_number(t.id)
    assert.equal("BILL99", t.number)
    assert.equal("REGULAR", t.type)
    -- 18000 x 0.01 x 1.25 (silver) = 225, seen only in the after-state balance: the documented
    -- reply carries no points side effect
    assert.same({}, t.side_effects.effect)
    assert.equal("2225", t.customer.loyalty_points)
    assert.equal("43000", t.customer.lifetime_purchases)
    assert.is_string(t.customer.user_id)
    local state = sb:state()
    local stored
    for _, x in ipairs(state.transactions) do if x.number == "BILL99" then stored = x end end
    assert.same({ { name = "category", value = "shoes" } }, stored.line_items[1].attributes)
    assert.same({ { name = "channel", value = "web" } }, stored.custom_fields)
    assert.equal("store.server", stored.attribution.till)
    assert.equal("store.one", stored.attribution.store)
  end)

  it("transaction/add upgrades the tier by lifetime purchases", function()
    local r = bill("BIG1", 30000)  -- Tom: 25000 -> 55000 crosses gold (50000)
    assert.equal("gold", r.json.response.transactions.transaction[1].customer.current_slab)
  end)

  it("a duplicate bill number answers 604", function()
    bill("DUP1", 100)
    local r = bill("DUP1", 100)
    local t = r.json.response.transactions.transaction[1]
    assert.equal(604, t.item_status.code)
    assert.equal("false", t.item_status.success)
    assert.equal("false", r.json.response.status.success)
  end)

  it("transaction/add registers an unknown customer automatically", function()
    local r = bill("NEW1", 1000, { mobile = "919000000777", firstname = "Walk", lastname = "In" })
    local t = r.json.response.transactions.transaction[1]
    assert.is_nil(t.side_effects.effect[1])
    assert.equal("10", t.customer.loyalty_points)
    local g = sb:get("/v1.1/customer/get?mobile=919000000777")
    assert.equal("Walk", g.json.response.customers.customer[1].firstname)
    assert.equal(10, g.json.response.customers.customer[1].loyalty_points)
  end)

  it("returns reverse points: AMOUNT in proportion, LINE_ITEM by line share, FULL the rest", function()
    local function ret(number, kind, amount, lines)
      local r = sb:post("/v1.1/transaction/add", { root = { transaction = { type = "return", return_type = kind,
        number = number, amount = amount, purchase_time = "2026-01-02",
        line_items = lines and { line_item = lines } or nil, customer = { mobile = "917713643123" } } } })
      return r.json.response.transactions.transaction[1]
    end
    local two_lines = { line_items = { line_item = {
      { serial = 1, item_code = "A", qty = 2, amount = 6000 },
      { serial = 2, item_code = "B", qty = 1, amount = 4000 } } } }
    -- Rita is bronze: 100 points on a 10000 bill; balance 50 + 100
    bill("RET1", 10000, { mobile = "917713643123" }, two_lines)
    local t = ret("RET1", "AMOUNT", 2500)
    assert.equal(600, t.item_status.code)
    assert.equal("25", t.points_deducted)
    assert.equal("125", t.points_balance)
    -- documented return-type conflicts: LINE_ITEM after AMOUNT (632), FULL after a partial return (639)
    assert.equal(632, ret("RET1", "LINE_ITEM", 4000, { { serial = 2, item_code = "B", qty = 1 } }).item_status.code)
    assert.equal(639, ret("RET1", "FULL", 0).item_status.code)
    assert.equal(630, ret("RET1", "AMOUNT", 7501).item_status.code)
    local function earned(number)
      for _, x in ipairs(sb:state().transactions) do if x.number == number then return x.points_awarded end end
    end
    bill("RET2", 10000, { mobile = "917713643123" }, two_lines) -- Rita is silver by now
    t = ret("RET2", "LINE_ITEM", 4000, { { serial = 2, item_code = "B", qty = 1, amount = 4000 } })
    assert.equal(string.format("%d", math.floor(earned("RET2") * 0.4)), t.points_deducted)
    -- a line cannot be returned twice (629), nor one the bill does not have (688)
    assert.equal(629, ret("RET2", "LINE_ITEM", 4000, { { serial = 2, item_code = "B", qty = 1 } }).item_status.code)
    assert.equal(629, ret("RET2", "LINE_ITEM", 9000, { { serial = 1, item_code = "A", qty = 3 } }).item_status.code)
    assert.equal(688, ret("RET2", "LINE_ITEM", 10, { { serial = 9, item_code = "Z", qty = 1 } }).item_status.code)
    assert.equal(635, ret("RET2", "AMOUNT", 10).item_status.code)
    t = ret("RET2", "LINE_ITEM", 3000, { { serial = 1, item_code = "A", qty = 1 } })
    -- half of line A: 3000 of the 10000 lines
    assert.equal(string.format("%d", math.floor(earned("RET2") * 0.3)), t.points_deducted)
    bill("RET3", 10000, { mobile = "917713643123" }, two_lines)
    t = ret("RET3", "FULL", 0)
    assert.equal(string.format("%d", earned("RET3")), t.points_deducted)
    assert.equal(628, ret("RET3", "FULL", 0).item_status.code)
    local nomatch = sb:post("/v1.1/transaction/add", { root = { transaction = { type = "return", return_type = "FULL",
      number = "NOPE", amount = 1, customer = { mobile = "917713643123" } } } })
    assert.equal(624, nomatch.json.response.transactions.transaction[1].item_status.code)
  end)

  it("a line return's share is of the bill's lines, whatever part of the bill points paid", function()
    -- 1047 of goods, 100 paid with points: the bill amount (net) is 947, the lines are 1047.
    bill("NET1", 947, { mobile = "919999000003" }, { line_items = { line_item = {
      { serial = 1, item_code = "A", qty = 1, amount = 547 },
      { serial = 2, item_code = "B", qty = 1, amount = 500 } } } })
    local earned = 0
    for _, x in ipairs(sb:state().transactions) do if x.number == "NET1" then earned = x.points_awarded end end
    local r = sb:post("/v1.1/transaction/add", { root = { transaction = { type = "return", return_type = "LINE_ITEM",
      number = "NET1", amount = 500, customer = { mobile = "919999000003" },
      line_items = { line_item = { { serial = 2, item_code = "B", qty = 1, amount = 500 } } } } } })
    local t = r.json.response.transactions.transaction[1]
    assert.equal(string.format("%d", math.floor(earned * 500 / 1047)), t.points_deducted)
  end)

  it("transaction/get reads a bill back, and 602 for an unknown one", function()
    bill("GET1", 500)
    local r = sb:get("/v1.1/transaction/get?number=GET1&format=json")
    local t = r.json.response.transactions.transaction[1]
    assert.equal("GET1", t.number)
    assert.equal("6", t.points.awarded)
    assert.equal("919999000001", t.customer.mobile)
    r = sb:get("/v1.1/transaction/get?number=NOPE")
    assert.equal(602, r.json.response.transactions.transaction[1].item_status.code)
  end)

  it("invalid transactions answer 601, 602, 605 and 606", function()
    local r = sb:post("/v1.1/transaction/add", { root = { transaction = {
      { type = "regular", number = "X1", amount = -5, customer = { mobile = "919999000001" } },
      { type = "regular", amount = 5, customer = { mobile = "919999000001" } },
      { type = "weird", number = "X3", amount = 5 },
      { type = "regular", number = "X4", amount = 5, customer = {} } } } })
    local items = r.json.response.transactions.transaction
    assert.same({ 601, 602, 605, 606 }, { items[1].item_status.code, items[2].item_status.code,
      items[3].item_status.code, items[4].item_status.code })
    assert.equal(4, r.json.response.status.total)
  end)
end)

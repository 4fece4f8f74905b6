-- GET /v1.1/customer/transactions in the sandbox: the documented shape (S-V11 "Get Customer
-- Transactions": count a number, start the first id shown, rows, per-transaction points), the
-- bill filter, paging, custom fields on returns, and the item-level not-found of customer/get.
local support = require("support.sandbox")

describe("sandbox v1.1 customer/transactions", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  local RITA = "917713643123"

  local function post_tx(t)
    t.customer = { mobile = RITA }
    local r = sb:post("/v1.1/transaction/add", { root = { transaction = t } })
    local item = r.json.response.transactions.transaction[1]
    assert.equal(600, item.item_status.code)
    return item
  end

  local function history(query)
    local r = sb:get("/v1.1/customer/transactions?format=json&mobile=" .. RITA .. (query or ""))
    assert.equal(200, r.status)
    return r.json.response
  end

  before_each(function()
    post_tx { type = "regular", number = "CT-1", amount = 1000, billing_time = "2026-01-02 10:00:00" }
    post_tx { type = "regular", number = "CT-2", amount = 2000, billing_time = "2026-01-03 10:00:00",
              line_items = { line_item = { { serial = 1, item_code = "A", amount = 1200 },
                                           { serial = 2, item_code = "B", amount = 800 } } } }
    post_tx { type = "return", return_type = "LINE_ITEM", number = "CT-2", amount = 800,
              line_items = { line_item = { { serial = 2, item_code = "B", amount = 800 } } },
              custom_fields = { field = { { name = "loyalty_return_ref", value = "return:CT-2:abc" } } } }
    -- a second return of the bill by lines (after LINE_ITEM the CRM refuses AMOUNT: 635)
    post_tx { type = "return", return_type = "LINE_ITEM", number = "CT-2", amount = 100,
              line_items = { line_item = { { serial = 1, item_code = "A", qty = 1, amount = 100 } } } }
  end)

  it("lists the customer's bills and returns newest first, with count, start and rows", function()
    local resp = history()
    assert.same({ "true", 200 }, { resp.status.success, resp.status.code })
    local c = resp.customer
    assert.equal(RITA, c.mobile)
    assert.same({ "true", "1052" }, { c.item_status.success, c.item_status.code })
    assert.equal(4, c.count)
    local list = c.transactions.transaction
    assert.equal(list[1].id, c.start)
    assert.equal("4", c.rows)
    assert.equal(4, #list)
    assert.same({ "0", "0", "0", "1016" }, { list[1].points.issued, list[1].points.redeemed, list[1].points.expired,
                                              list[1].points.program_id })
    assert.is_string(list[3].points.issued)
    local function row(t) return { t.number, t.type, t.return_type, t.amount } end
    assert.same({ "CT-2", "RETURN", "LINE_ITEM", "100" }, row(list[1]))
    assert.same({ "CT-2", "RETURN", "LINE_ITEM", "800" }, row(list[2]))
    assert.same({ "CT-2", "REGULAR", "" }, { list[3].number, list[3].type, list[3].return_type })
    assert.same({ "CT-1", "REGULAR", "2026-01-02 10:00:00" }, { list[4].number, list[4].type, list[4].billing_time })
    assert.is_string(list[4].id)
    assert.is_table(list[2].custom_fields.field) -- the documented sample shows them on every row
  end)

  it("filters by bill number and shows custom fields when asked", function()
    local c = history("&number=CT-2&custom_fields=true").customer
    assert.equal(3, c.count)
    local list = c.transactions.transaction
    assert.equal(3, #list)
    for _, t in ipairs(list) do assert.equal("CT-2", t.number) end
    assert.same({ { name = "loyalty_return_ref", value = "return:CT-2:abc" } }, list[2].custom_fields.field)
    assert.same({}, list[1].custom_fields.field)
    local none = history("&number=NOPE").customer
    assert.same({ 0, "", "0" }, { none.count, none.start, none.rows })
  end)

  it("honours limit and offset", function()
    local c = history("&limit=2&offset=1").customer
    assert.equal(4, c.count)
    local list = c.transactions.transaction
    assert.equal(list[1].id, c.start) -- start is the first transaction's id, not the offset
    assert.equal("2", c.rows)
    assert.equal(2, #list)
    assert.same({ "LINE_ITEM", "REGULAR" }, { list[1].return_type or "", list[2].type })
    assert.equal(0, #history("&offset=4").customer.transactions.transaction)
  end)

  it("answers an unknown customer with customer/get's item-level 1012", function()
    local r = sb:get("/v1.1/customer/transactions?format=json&mobile=910000000000")
    assert.equal(200, r.status)
    assert.equal("false", r.json.response.status.success)
    assert.equal("910000000000", r.json.response.customer.mobile)
    assert.same({ "false", "1012" }, { r.json.response.customer.item_status.success,
                                       r.json.response.customer.item_status.code })
  end)

  it("needs an identifier and Basic or OAuth auth", function()
    assert.equal(400, sb:get("/v1.1/customer/transactions?format=json").status)
    assert.equal(401, sb:get("/v1.1/customer/transactions?mobile=" .. RITA, {}).status)
  end)

  it("answers 400 without a customer identifier, as customer/get does", function()
    for _, path in ipairs { "/v1.1/customer/transactions?format=json", "/v1.1/customer/get?format=json" } do
      local r = sb:get(path)
      assert.equal(400, r.status)
      assert.equal(400, r.json.response.status.code)
      assert.matches("identifier is required", r.json.response.status.message)
    end
  end)

  it("reaches the client as customer_transactions with an array of transactions", function()
    local client = assert(require("loyalty.client").new {
      base_url = sb.url, username = "store.server", password = "server123" })
    local r = assert(client:customer_transactions { mobile = RITA, number = "CT-2", custom_fields = true })
    assert.equal(3, #r.transactions)
    assert.same({ "loyalty_return_ref" }, { r.transactions[2].custom_fields.field[1].name })
    assert.equal(RITA, r.customer.mobile)
    local missing, err = client:customer_transactions { mobile = "910000000000" }
    assert.is_nil(missing)
    assert.same({ "api", 1012 }, { err.kind, err.code })
    client:close()
  end)
end)

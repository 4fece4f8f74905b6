-- The returns ledger reads a bill's returns from customer/transactions pages. Invariant:
--   ONCE_PER_ROW  a RETURN row counts once however the CRM pages: a CRM that ignores `offset`
--                 (answering the first page again; its docs show `start` as a transaction id)
--                 never makes a line look returned twice, nor hides a return
local loyalty = require "loyalty"
local support = require "support.sandbox"

local TOM = { mobile = "919999000001", firstname = "Tom" }
local LINES = { { sku = "SOCK", serial = 1, qty = 300, price = 10, amount = 3000 } }
local ORDER = { id = "PG-1", lines = LINES, total = 3000, gross = 3000 }

describe("the returns ledger against a CRM that ignores offset", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  local function program()
    return assert(loyalty.program {
      crm = { base_url = sb.url, username = "store.server", password = "server123", sleep = function() end,
              max_attempts = 1 },
      skip_redemption_otp = true,
    })
  end

  -- n line returns of one sock each, posted straight to the CRM (one batch).
  local function returned_at_crm(n)
    local list = {}
    for i = 1, n do
      list[i] = { type = "return", return_type = "LINE_ITEM", number = ORDER.id, amount = 10,
                  billing_time = "2026-01-01 10:00:00", purchase_time = "2026-01-01",
                  customer = { mobile = TOM.mobile },
                  line_items = { line_item = { { serial = 1, item_code = "SOCK", qty = 1, rate = 10, value = 10,
                                                 amount = 10 } } } }
    end
    local r = sb:post("/v1.1/transaction/add?format=json", { root = { transaction = list } })
    assert.equals(200, r.status)
  end

  local function crm_returned()
    local q = 0
    for _, t in ipairs(assert(sb:state()).transactions) do
      if t.number == ORDER.id and t.type == "RETURN" then q = q + 1 end
    end
    return q
  end

  for _, ignore in ipairs { false, true } do
    it("ONCE_PER_ROW: 100 returns across two pages" .. (ignore and ", offset ignored" or ""), function()
      local p = program()
      assert(p:order_placed(TOM, ORDER))
      returned_at_crm(100) -- 101 rows for the bill: more than one page of 100
      assert.equals(100, crm_returned())
      if ignore then assert(sb:faults { match = "/v1.1/customer/transactions", action = "ignore_args",
                                        args = { "offset" }, count = 50 }) end
      local r, err = p:order_returned(TOM, ORDER, { lines = { { sku = "SOCK", qty = 1 } } })
      assert.is_nil(err, "ONCE_PER_ROW: 200 socks remain")
      assert.is_truthy(r)
      assert.equals(101, crm_returned())
      -- the ledger still knows what remains: 199 can go, 200 cannot
      local over
      r, over = p:order_returned(TOM, ORDER, { lines = { { sku = "SOCK", qty = 200 } } })
      assert.is_nil(r)
      assert.equals("over_return", over.code, "ONCE_PER_ROW: no return hidden")
      assert.equals(101, crm_returned())
      p:close()
    end)
  end
end)

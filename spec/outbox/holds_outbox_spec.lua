-- What redemption holds need from both outbox backends: an entry due later (next_at), found again
-- by its dedupe key, in its own lane so that it never holds up the customer's other writes.
local stores = require "outbox.helpers.stores"

for _, backend in ipairs { "sqlite", "redis" } do
  describe("outbox holds (" .. backend .. ")", function()
    local now = 5000
    local store = stores.new(backend, "holds", function() return now end)
    store.use()
    local open = store.open

    it("keeps a hold until its time, finds it by key, and lets the customer's orders pass", function()
      local ob = open()
      local hold = assert(ob:put { kind = "redemption_hold", customer_key = "hold:mobile:1", dedupe_key = "hold:O-1",
                                   payload = { bill_number = "O-1" }, next_at = now + 1800 })
      local order = assert(ob:put { kind = "transaction_add", customer_key = "mobile:1", payload = { number = "O-2" } })
      local due = assert(ob:due(now, 10, 30))
      assert.equals(1, #due)
      assert.equals(order, due[1].id)
      local e = assert(ob:find("hold:O-1"))
      assert.same({ hold, "pending", now + 1800, "O-1" }, { e.id, e.state, e.next_at, e.payload.bill_number })
      assert.is_nil(ob:find("hold:nope"))
      -- the same hold again is the same entry
      local again, existed = ob:put { kind = "redemption_hold", customer_key = "hold:mobile:1", dedupe_key = "hold:O-1",
                                      payload = { bill_number = "O-1" }, next_at = now + 99 }
      assert.same({ hold, true }, { again, existed })
      assert.is_true(assert(ob:mark_delivered(order)))
      now = now + 1801
      due = assert(ob:due(now, 10, 30))
      assert.equals(1, #due)
      assert.equals(hold, due[1].id)
      ob:close()
    end)

    it("a cancel that cannot reach the CRM makes the hold due at once", function()
      local ob = open()
      local hold = assert(ob:put { kind = "redemption_hold", customer_key = "hold:mobile:2", dedupe_key = "hold:O-3",
                                   payload = {}, next_at = now + 1800 })
      assert.same({}, assert(ob:due(now, 10, 30)))
      assert.is_true(assert(ob:retry(hold)))
      assert.equals(hold, assert(ob:due(now, 10, 30))[1].id)
      ob:close()
    end)
  end)
end

-- CRM.COM journeys found by attacking the merged program: every figure against the sandbox
-- CRM.COM's own wallet (/sandbox/crmcom/state).
--   RETRY_NOOP        a retried whole-order return changes nothing and is not an error
--   BOOKED=SHOWN      an order placed after its held spend was given back is booked as a live
--                     purchase, and the cashback the result names is in the wallet
local loyalty = require "loyalty"
local support = require "support.sandbox"
local token_store = require "loyalty.token_store"

describe("CRM.COM journeys against the wallet", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  local function program(extra)
    local s = {
      provider = "crmcom",
      crm = { base_url = sb.url .. "/crmapi/rest/v2", username = "pos.user", password = "pos123",
              organisation = "SANDBOXORG", unit = "UNIT-LIMASSOL", token_store = token_store.private(),
              sleep = function() end, max_attempts = 1 },
    }
    for k, v in pairs(extra or {}) do s[k] = v end
    return assert(loyalty.program(s))
  end

  local ELENI = { mobile = "35799000021" }
  local function wallet() return sb:crmcom_wallet("RP0000000021") end
  local cart = {
    lines = { { sku = "COFFEE-L", qty = 2, price = 4.76, amount = 9.52 },
              { sku = "CROISSANT", qty = 1, price = 2.98 } },
    shipping = 2, total = 14.5,
  }
  local function live_purchases()
    local n = 0
    for _, p in ipairs(sb:crmcom_state().purchases) do
      if p.life_cycle_state == "POSTED" then n = n + 1 end
    end
    return n
  end

  it("RETRY_NOOP: a whole-order return retried is already done, not an ALREADY_CANCELLED error", function()
    local p = program()
    local before = wallet()
    local o = { id = "QC-1", lines = cart.lines, shipping = cart.shipping, total = cart.total }
    assert(p:order_placed(ELENI, o))
    local ret = assert(p:order_returned(ELENI, o))
    assert.equals(before, wallet())
    assert.equals(before, ret.balance)
    local again, err = p:order_returned(ELENI, o)
    assert.is_nil(err)
    assert.is_true(again.already, "RETRY_NOOP")
    assert.same({ 0, 0 }, { again.points_deducted, again.points_reversed })
    assert.equals(before, again.balance)
    assert.equals(before, wallet(), "RETRY_NOOP")
    p:close()
  end)

  it("BOOKED=SHOWN: an order placed after its spend was cancelled is booked, and its cashback is in the wallet",
    function()
    local p = program()
    local before = wallet()
    assert(p:redeem(ELENI, { points = 5, order_id = "QC-2", cart = cart }))
    assert(p:cancel_redemption(ELENI, "QC-2"))
    assert.equals(before, wallet())
    -- the payment went through after all: the order arrives, its spend released
    local o = { id = "QC-2", lines = cart.lines, shipping = cart.shipping, total = cart.total }
    local placed = assert(p:order_placed(ELENI, o))
    assert.equals("cancelled", placed.redemption_released)
    assert.equals(1, live_purchases(), "BOOKED=SHOWN: the order is a live purchase")
    assert.equals(before + placed.points_earned, wallet(), "BOOKED=SHOWN")
    assert.equals(wallet(), placed.balance)
    -- RETRY_NOOP: the order again books nothing more
    local dup = assert(p:order_placed(ELENI, o))
    assert.equals(1, live_purchases(), "RETRY_NOOP")
    assert.equals(before + placed.points_earned, wallet(), "RETRY_NOOP")
    assert.equals(dup.transaction_id, placed.transaction_id)
    -- and its return takes the cashback back
    local ret = assert(p:order_returned(ELENI, o))
    assert.equals(placed.points_earned, ret.points_deducted)
    assert.equals(before, wallet())
    assert.equals(0, live_purchases())
    p:close()
  end)
end)

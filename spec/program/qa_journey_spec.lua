-- Whole-journey checks found by attacking the merged program (issue QA): each case is a way the
-- program and the CRM's ledger (/sandbox/state) could disagree. Invariants named as in
-- money_journey_spec.lua (BALANCE, SHOWN=PAID, ABANDONED...), plus:
--   QUEUED_ORDER_RETURNS  an order still waiting in the outbox can be returned: the return (and its
--                    redemption reversal) queue behind it, never a 624 "No matching bill"
--   CART_CAP         points never pay more than the cart costs, with or without rules
--   ONE_ORDER_ID     an order id is the same order whether it came as 2001, 2001.0 (a JSON
--                    number decoded under Lua 5.4) or "2001": one bill number, one hold
--   OWN_HOLD         a shopper's cancel releases only a hold of their own, never another's
--   SAME_BASE        an amount return gives back the redemption in proportion to the money paid
--                    (the bill's amount), not to the lines' gross
--   POSTED_BY_ID     an order whose customer has the store's identifier is posted, whatever else
--                    is missing (email-only means: an email but not that identifier)
--   PAID_STAYS_PAID  points that paid for an order the store placed are never given back by a
--                    hold's expiry, whether or not the order itself is posted to earn points
local loyalty = require "loyalty"
local drainer = require "loyalty.outbox.drainer"
local programs = require "outbox.helpers.programs"

local TOM = { mobile = "919999000001", firstname = "Tom" }
local CART = { total = 2597, lines = { { sku = "TV-STAND", qty = 1, price = 2597, amount = 2597 } } }

describe("QA journeys against the CRM's ledger", function()
  local ctx = programs.new()
  ctx.use()
  local sb
  before_each(function() sb = ctx.sb end)

  local function program(extra, with_outbox)
    local s = { rules = "examples/rules", skip_redemption_otp = true }
    for k, v in pairs(extra or {}) do s[k] = v end
    if s.rules == false then s.rules = nil end
    return assert(loyalty.program(ctx.settings(with_outbox and {} or false, nil, s)))
  end

  local function crm_balance(field, value)
    for _, c in ipairs(assert(sb:state()).customers) do
      if c[field] == value then return c.loyalty_points end
    end
  end

  local skipped = {
    { "earning on orders is off", { earn_on_order = false }, TOM, { "mobile", TOM.mobile } },
    { "an email-only order that is not posted", {}, { email = "tom@example.com" }, { "email", "tom@example.com" } },
  }
  for _, case in ipairs(skipped) do
    for _, with_outbox in ipairs { false, true } do
      it("PAID_STAYS_PAID: " .. case[1] .. (with_outbox and " (outbox)" or "") ..
         ": the redemption that paid for the order is not given back at the hold's expiry", function()
        local clock = os.time()
        local p = program({ clock = function() return clock end, redemption_hold_s = 60,
                            earn_on_order = case[2].earn_on_order }, with_outbox)
        local user, key = case[3], case[4]
        local bal = crm_balance(key[1], key[2])
        local red = assert(p:redeem(user, { points = 400, order_id = "QA-SKIP", cart = CART }))
        assert.equals(bal - 400, crm_balance(key[1], key[2]), "BALANCE")
        local placed = assert(p:order_placed(user, { id = "QA-SKIP", total = CART.total - red.value, gross = CART.total,
                                                     lines = CART.lines }))
        assert.is_true(placed.skipped)
        clock = clock + 61
        if with_outbox then
          assert(drainer.run(p, p.outbox, { sleep = function() end, clock = function() return clock end }))
        else
          assert.same({ expired = 0, failed = 0 }, p:expire_holds())
        end
        assert.equals(bal - 400, crm_balance(key[1], key[2]), "PAID_STAYS_PAID")
        -- and a cancel for a placed order is refused, not a refund
        local c, err = p:cancel_redemption(user, "QA-SKIP")
        assert.is_nil(c)
        assert.equals("order_placed", err.code)
        assert.equals(bal - 400, crm_balance(key[1], key[2]), "PAID_STAYS_PAID")
        -- the order comes back: nothing to return at the CRM, but the points that paid for it do
        local o = { id = "QA-SKIP", total = CART.total - red.value, gross = CART.total, lines = CART.lines }
        local r, rerr = p:order_returned(user, o, { lines = { { sku = "TV-STAND", qty = 1 } } })
        assert.is_nil(r)
        assert.equals("partial_unposted", rerr.code)
        local ret = assert(p:order_returned(user, o))
        assert.same({ 400, 0 }, { ret.points_reversed, ret.points_deducted })
        assert.equals(bal, crm_balance(key[1], key[2]), "BALANCE")
        assert.equals(bal, ret.balance, "BALANCE")
        local again = assert(p:order_returned(user, o))
        assert.is_true(again.already, "RETRY_NOOP")
        assert.equals(bal, crm_balance(key[1], key[2]), "RETRY_NOOP")
        p:close()
      end)
    end
  end

  local function bill(number, kind)
    local out = {}
    for _, t in ipairs(assert(sb:state()).transactions) do
      if t.number == number and t.type == (kind or "REGULAR") then out[#out + 1] = t end
    end
    return out
  end

  it("QUEUED_ORDER_RETURNS: a return of an order the outbox still holds queues behind it", function()
    local p = program(nil, true)
    local LINES = { { sku = "PHONE-CASE", qty = 1, price = 547, amount = 547 },
                    { sku = "SK-TSHIRT-M", qty = 2, price = 250, amount = 500 } }
    local cart = { total = 1047, lines = LINES }
    local bal = crm_balance("mobile", TOM.mobile)
    local red = assert(p:redeem(TOM, { points = 400, order_id = "QA-Q", cart = cart }))
    bal = bal - 400
    -- the CRM blinks at checkout: the order is queued
    assert(sb:faults { match = "/v1.1/transaction/add", count = 2, status = 503 })
    local o = { id = "QA-Q", lines = LINES, total = 1047 - red.value, gross = 1047 }
    assert.is_true(assert(p:order_placed(TOM, o)).queued)
    assert(sb:clear_faults())
    -- the CRM is back, the drainer has not run yet, and the shopper returns a T-shirt
    local line = assert(p:order_returned(TOM, o, { lines = { { sku = "SK-TSHIRT-M", qty = 1 } } }))
    assert.is_true(line.queued, "QUEUED_ORDER_RETURNS")
    assert.equals(0, #bill("QA-Q", "RETURN"))
    -- ONE_RETURN against the queued order's own lines
    local r, err = p:order_returned(TOM, o, { lines = { { sku = "SK-TSHIRT-M", qty = 2 } } })
    assert.is_nil(r)
    assert.equals("over_return", err.code)
    r, err = p:order_returned(TOM, o, { lines = { { sku = "NOT-BOUGHT", qty = 1 } } })
    assert.is_nil(r)
    assert.equals("no_such_line", err.code)
    assert.equals(bal, crm_balance("mobile", TOM.mobile), "BALANCE: nothing booked yet")
    -- the drainer: the order first, then its return and the redemption's share
    assert(drainer.run(p, p.outbox, { sleep = function() end }))
    local placed, ret = bill("QA-Q")[1], bill("QA-Q", "RETURN")
    assert.is_table(placed)
    assert.equals(1, #ret)
    local share = math.floor(400 * 250 / 1047)
    bal = bal + placed.points_awarded - ret[1].points_deducted + share
    assert.equals(bal, crm_balance("mobile", TOM.mobile), "BALANCE")
    -- the rest of the order, now that the CRM has it: what remains and the rest of the redemption
    local full = assert(p:order_returned(TOM, o))
    assert.equals(400 - share, full.points_reversed)
    bal = bal - full.points_deducted + full.points_reversed
    assert.equals(bal, crm_balance("mobile", TOM.mobile), "BALANCE")
    assert.equals(bal, full.balance, "BALANCE")
    p:close()
  end)

  it("CART_CAP: without rules, the most on offer is what the cart costs at the CRM's rate", function()
    local p = program { rules = false }
    local bal = crm_balance("mobile", TOM.mobile) -- 2000 points, worth 1000.00 at the CRM's 0.5
    local q = assert(p:quote_redemption(TOM, { total = 100 }))
    assert.is_true(q.allowed)
    assert.same({ 200, 100 }, { q.points, q.value }, "CART_CAP")
    q = assert(p:quote_redemption(TOM, { total = 100 }, 2000))
    assert.is_false(q.allowed)
    local r, err = p:redeem(TOM, { points = 2000, order_id = "QA-CART", total = 100 })
    assert.is_nil(r)
    assert.equals("refused", err.kind)
    assert.equals(bal, crm_balance("mobile", TOM.mobile), "CART_CAP")
    r = assert(p:redeem(TOM, { points = 200, order_id = "QA-CART", total = 100 }))
    assert.equals(100, r.value)
    assert.equals(bal - 200, crm_balance("mobile", TOM.mobile), "BALANCE")
    p:close()
  end)

  it("ONE_ORDER_ID: an id decoded from JSON as 2001.0 is the order 2001 (bill number, hold, return)", function()
    local clock = os.time()
    local p = program { clock = function() return clock end, redemption_hold_s = 60 }
    local bal = crm_balance("mobile", TOM.mobile)
    local as_float = require("cjson").decode('{"id": 2001}').id -- 2001.0 under Lua 5.4
    local red = assert(p:redeem(TOM, { points = 400, order_id = as_float, cart = CART }))
    local placed = assert(p:order_placed(TOM, { id = 2001, total = CART.total - red.value, gross = CART.total,
                                                lines = CART.lines }))
    assert.equals(1, #bill("2001"), "ONE_ORDER_ID: bill number 2001")
    assert.equals(0, #bill("2001.0"))
    clock = clock + 61
    assert.same({ expired = 0, failed = 0 }, p:expire_holds(), "PAID_STAYS_PAID")
    bal = bal - 400 + placed.points_earned
    assert.equals(bal, crm_balance("mobile", TOM.mobile), "BALANCE")
    local ret = assert(p:order_returned(TOM, { id = as_float, lines = CART.lines }))
    assert.equals(400, ret.points_reversed)
    assert.equals(bal - ret.points_deducted + 400, crm_balance("mobile", TOM.mobile), "BALANCE")
    p:close()
  end)

  it("OWN_HOLD: a cancel naming another shopper's order changes nothing", function()
    local p = program()
    local RITA = { mobile = "917713643123" }
    local bal = crm_balance("mobile", TOM.mobile)
    assert(p:redeem(TOM, { points = 400, order_id = "QA-MINE", cart = CART }))
    local c, err = p:cancel_redemption(RITA, "QA-MINE")
    assert.is_nil(c)
    assert.same({ "refused", "not_this_customer" }, { err.kind, err.code })
    assert.equals(bal - 400, crm_balance("mobile", TOM.mobile), "OWN_HOLD")
    -- the hold is still Tom's: his order settles it, his cancel would release it
    assert(p:order_placed(TOM, { id = "QA-MINE", total = CART.total - 200, gross = CART.total, lines = CART.lines }))
    assert.equals("placed", p.holds:find("QA-MINE").state)
    p:close()
  end)

  it("SAME_BASE: half of the money paid returned gives back half of the redemption", function()
    local p = program()
    local cart = { total = 2000, lines = { { sku = "SOFA", qty = 1, price = 2000, amount = 2000 } } }
    local bal = crm_balance("mobile", TOM.mobile)
    local red = assert(p:redeem(TOM, { points = 1000, order_id = "QA-AMT", cart = cart })) -- pays 500.00
    local o = { id = "QA-AMT", lines = cart.lines, total = 2000 - red.value, gross = 2000 }
    local placed = assert(p:order_placed(TOM, o))
    bal = bal - 1000 + placed.points_earned
    local half = assert(p:order_returned(TOM, o, { amount = 750 })) -- half of the 1500.00 paid
    assert.equals(500, half.points_reversed, "SAME_BASE")
    bal = bal - half.points_deducted + half.points_reversed
    assert.equals(bal, crm_balance("mobile", TOM.mobile), "BALANCE")
    local rest = assert(p:order_returned(TOM, o))
    assert.equals(500, rest.points_reversed)
    bal = bal - rest.points_deducted + rest.points_reversed
    assert.equals(bal, crm_balance("mobile", TOM.mobile), "BALANCE")
    assert.equals(bal, rest.balance, "BALANCE")
    p:close()
  end)

  it("POSTED_BY_ID: with identifier email or external_id, a customer without a mobile is no email-only order",
    function()
    for _, case in ipairs {
      { { identifier = "email" }, { email = "tom@example.com" } },
      { { identifier = "external_id" }, { external_id = "TOM001", email = "tom@example.com" } },
    } do
      assert(sb:reset())
      local p = program(case[1])
      local bal = crm_balance("mobile", TOM.mobile)
      local placed = assert(p:order_placed(case[2], { id = "QA-ID", total = 1000, lines = CART.lines }))
      assert.is_nil(placed.skipped, case[1].identifier)
      assert.equals(1, #bill("QA-ID"), "POSTED_BY_ID")
      assert.equals(bal + placed.points_earned, crm_balance("mobile", TOM.mobile), "BALANCE")
      p:close()
    end
    -- a mobile store still skips an email-only order unless told to post it
    local p = program()
    assert.is_true(assert(p:order_placed({ email = "tom@example.com" }, { id = "QA-EO", total = 10,
                                                                     lines = CART.lines })).skipped)
    p:close()
  end)
end)

-- A redeem whose reply is lost: the CRM booked it (or not), the store never heard. Every figure
-- against the CRM's own ledger (/sandbox/state, /sandbox/crmcom/state). Invariants:
--   ABANDONED   after a lost-reply redeem and its cancel (or expiry) the balance is what it was
--               before the redeem: exactly what was booked is reversed, nothing when nothing was
--   ONCE        a redeem retried for the same order (lost reply or not) debits once
--   UNKNOWN     the failed redeem says its outcome is unknown and that a hold was recorded
local loyalty = require "loyalty"
local support = require "support.sandbox"
local drainer = require "loyalty.outbox.drainer"
local programs = require "outbox.helpers.programs"
local token_store = require "loyalty.token_store"

local TOM = { mobile = "919999000001", firstname = "Tom" }
local CART = { total = 2597, lines = { { sku = "PHONE-CASE", qty = 1, price = 2597, amount = 2597 } } }

describe("a redeem whose reply is lost (Capillary)", function()
  local ctx = programs.new()
  ctx.use()
  local sb
  before_each(function() sb = ctx.sb end)

  local function program(extra, with_outbox)
    local s = { skip_redemption_otp = true }
    for k, v in pairs(extra or {}) do s[k] = v end
    return ctx.program(with_outbox and {} or false, { timeout_ms = 3000 }, s)
  end

  local function balance()
    for _, c in ipairs(assert(sb:state()).customers) do
      if c.mobile == TOM.mobile then return c.loyalty_points end
    end
  end

  local function booked(ref)
    local out = {}
    for _, r in ipairs(assert(sb:state()).redemptions) do
      if r.external_reference_number == ref then out[#out + 1] = r end
    end
    return out
  end

  -- Every attempt of the client's redeem (its retries and libcurl's resend on a reused connection)
  -- is handled (a repeat: the original) and its reply dropped; the faults go before the next step.
  local function lose_replies(action)
    assert(sb:faults { match = "/v1.1/points/redeem", action = action or "apply_drop", count = 20 })
  end
  local function redeem_lost(p, req)
    local r, err = p:redeem(TOM, req)
    assert(sb:clear_faults())
    return r, err
  end

  for _, with_outbox in ipairs { false, true } do
    local how = with_outbox and " (sqlite outbox)" or " (no outbox)"

    it("ABANDONED: booked, reply lost, cancelled: the points come back" .. how, function()
      local p = program(nil, with_outbox)
      local before = balance()
      lose_replies()
      local r, err = redeem_lost(p, { points = 300, order_id = "L-1", cart = CART })
      assert.is_nil(r)
      assert.is_true(err.outcome_unknown, "UNKNOWN")
      assert.is_number(err.hold_expires_at, "UNKNOWN: a hold was recorded")
      assert.equals(before - 300, balance(), "ONCE: booked once although the client sent it twice")
      assert.equals(1, #booked("redeem-L-1"), "ONCE")
      local c = assert(p:cancel_redemption(TOM, "L-1"))
      assert.is_true(c.cancelled)
      assert.equals(300, c.points_reversed)
      assert.equals(before, balance(), "ABANDONED")
      assert.equals(before, c.balance)
      assert.is_true(booked("redeem-L-1")[1].reversed)
      assert.is_true(assert(p:cancel_redemption(TOM, "L-1")).already)
      assert.equals(before, balance(), "ABANDONED: a second cancel changes nothing")
      p:close()
    end)

    it("ABANDONED: never booked (connection dropped first), cancelled: nothing reversed" .. how, function()
      local p = program({ skip_redemption_otp = false }, with_outbox)
      local before = balance()
      lose_replies("drop")
      local r, err = redeem_lost(p, { points = 300, order_id = "L-2", cart = CART, otp = "ABC123" })
      assert.is_nil(r)
      assert.is_true(err.outcome_unknown, "UNKNOWN")
      assert.equals(before, balance())
      local c = assert(p:cancel_redemption(TOM, "L-2"))
      assert.is_true(c.cancelled)
      assert.equals(0, c.points_reversed)
      assert.equals(before, balance(), "ABANDONED")
      assert.equals(0, #booked("redeem-L-2"), "the resolving replay (no OTP) booked nothing")
      p:close()
    end)

    it("ONCE: a redeem retried after a lost reply gets the booked redemption; placing the order keeps it" .. how,
      function()
      local p = program(nil, with_outbox)
      local before = balance()
      lose_replies()
      assert.is_nil(redeem_lost(p, { points = 300, order_id = "L-3", cart = CART }))
      local again = assert(p:redeem(TOM, { points = 300, order_id = "L-3", cart = CART }))
      assert.equals(booked("redeem-L-3")[1].id, again.redemption_id)
      assert.equals(before - 300, balance(), "ONCE")
      local placed = assert(p:order_placed(TOM, { id = "L-3", lines = CART.lines, total = 2597 }))
      assert.equals(before - 300 + placed.points_earned, balance(), "ONCE")
      local bill
      for _, t in ipairs(sb:state().transactions) do if t.number == "L-3" then bill = t end end
      assert.equals("points", bill.payment_details[1].mode, "the bill carries the redemption")
      assert.is_false(booked("redeem-L-3")[1].reversed == true)
      p:close()
    end)
  end

  it("ABANDONED: the drainer resolves and reverses an expired hold of unknown outcome", function()
    local clock = os.time()
    local p = program({ redemption_hold_s = 60, clock = function() return clock end }, true)
    local before = balance()
    lose_replies()
    assert.is_nil(redeem_lost(p, { points = 250, order_id = "L-4", cart = CART }))
    assert.equals(before - 250, balance())
    clock = clock + 61
    local t = assert(drainer.run(p, p.outbox, { sleep = function() end, clock = function() return clock end }))
    assert.equals(1, t.delivered)
    assert.equals(before, balance(), "ABANDONED")
    assert.equals("expired", p.holds:find("L-4").state)
    p:close()
  end)

  it("a replay refused for another reason than the OTP, balance or limits leaves the outcome unknown, loudly",
    function()
    local p = program()
    local before = balance()
    lose_replies()
    assert.is_nil(redeem_lost(p, { points = 300, order_id = "L-7", cart = CART }))
    -- the CRM answers the resolving replay with a refusal that may mean "known reference"
    assert(sb:faults { match = "/v1.1/points/redeem", action = "body_failure", code = 899, count = 20 })
    local c, err = p:cancel_redemption(TOM, "L-7")
    assert(sb:clear_faults())
    assert.is_nil(c)
    assert.is_true(err.outcome_unknown)
    assert.matches("redeem%-L%-7", err.message)
    assert.equals("held", p.holds:find("L-7").state, "never settled as if nothing was booked")
    assert.equals(before - 300, balance())
    c = assert(p:cancel_redemption(TOM, "L-7"))
    assert.equals(300, c.points_reversed)
    assert.equals(before, balance(), "ABANDONED")
    p:close()
  end)

  it("an expiry that cannot be resolved is a dead letter, and a later cancel still gives the points back", function()
    local clock = os.time()
    local p = program({ redemption_hold_s = 60, clock = function() return clock end }, true)
    local before = balance()
    lose_replies()
    assert.is_nil(redeem_lost(p, { points = 250, order_id = "L-8", cart = CART }))
    assert(sb:faults { match = "/v1.1/points/redeem", action = "body_failure", code = 899, count = 20 })
    clock = clock + 61
    local t = assert(drainer.run(p, p.outbox, { sleep = function() end, clock = function() return clock end }))
    assert(sb:clear_faults())
    assert.equals(1, t.dead)
    assert.matches("redeem%-L%-8", p.outbox:find("hold:L-8").last_error)
    assert.equals(before - 250, balance(), "nothing reversed on a guess")
    local c = assert(p:cancel_redemption(TOM, "L-8"))
    assert.equals(250, c.points_reversed)
    assert.equals(before, balance(), "ABANDONED")
    assert.equals("cancelled", p.holds:find("L-8").state)
    assert.is_true(assert(p:cancel_redemption(TOM, "L-8")).already)
    p:close()
  end)

  it("ABANDONED: another process without a shared outbox cancels with the points it asked for", function()
    local p1, p2 = program(), program()
    local before = balance()
    lose_replies()
    assert.is_nil(redeem_lost(p1, { points = 300, order_id = "L-6", cart = CART }))
    assert.equals(before - 300, balance())
    local none, err = p2:cancel_redemption(TOM, "L-6")
    assert.is_nil(none)
    assert.equals("no_hold", err.code, "p2 holds nothing itself")
    local c = assert(p2:cancel_redemption(TOM, "L-6", { points = 300 }))
    assert.is_true(c.cancelled)
    assert.equals(300, c.points_reversed)
    assert.equals(before, balance(), "ABANDONED")
    p1:close()
    p2:close()
  end)

  it("ABANDONED: without an outbox expire_holds resolves the hold the same way", function()
    local clock = os.time()
    local p = program({ redemption_hold_s = 60, clock = function() return clock end })
    local before = balance()
    lose_replies()
    assert.is_nil(redeem_lost(p, { points = 250, order_id = "L-5", cart = CART }))
    assert.same({ expired = 1, failed = 0 }, p:expire_holds(clock + 61))
    assert.equals(before, balance(), "ABANDONED")
    p:close()
  end)
end)

describe("a redeem whose reply is lost (CRM.COM)", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  local function program()
    return assert(loyalty.program {
      provider = "crmcom",
      crm = { base_url = sb.url .. "/crmapi/rest/v2", username = "pos.user", password = "pos123",
              organisation = "SANDBOXORG", unit = "UNIT-LIMASSOL", token_store = token_store.private(),
              sleep = function() end, max_attempts = 1 },
    })
  end
  local ELENI = { mobile = "35799000021" }
  local cart = { lines = { { sku = "COFFEE-L", qty = 2, price = 4.76, amount = 9.52 } }, total = 9.52 }

  it("ABANDONED: the spend booked, its reply lost, cancelled: the wallet is what it was", function()
    local p = program()
    local before = sb:crmcom_wallet("RP0000000021")
    assert(sb:faults { match = "/crmapi/rest/v2/customer_events/spend_requests", action = "apply_drop", count = 20 })
    local r, err = p:redeem(ELENI, { points = 5, order_id = "LC-1", cart = cart })
    assert(sb:clear_faults())
    assert.is_nil(r)
    assert.is_true(err.outcome_unknown, "UNKNOWN")
    assert.is_true(sb:crmcom_wallet("RP0000000021") < before, "the spend was booked")
    local c = assert(p:cancel_redemption(ELENI, "LC-1"))
    assert.is_true(c.cancelled)
    assert.equals(before, sb:crmcom_wallet("RP0000000021"), "ABANDONED")
    p:close()
  end)

  it("ABANDONED: nothing booked (the purchase never made), cancelled: nothing changes", function()
    local p = program()
    local before = sb:crmcom_wallet("RP0000000021")
    assert(sb:faults { match = "/crmapi/rest/v2/customer_events/purchases/create", action = "drop", count = 20 })
    local r, err = p:redeem(ELENI, { points = 5, order_id = "LC-2", cart = cart })
    assert(sb:clear_faults())
    assert.is_nil(r)
    assert.is_true(err.outcome_unknown, "UNKNOWN")
    local c = assert(p:cancel_redemption(ELENI, "LC-2"))
    assert.is_true(c.cancelled)
    assert.equals(0, c.points_reversed)
    assert.equals(before, sb:crmcom_wallet("RP0000000021"), "ABANDONED")
    p:close()
  end)
end)

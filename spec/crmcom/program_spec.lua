-- loyalty.program with provider = "crmcom" against the sandbox: what carries over works on the
-- wallet's real amounts; what does not is a config error (at load for settings, at call for operations).
local loyalty = require "loyalty"
local config = require "loyalty.program.config"
local token_store = require "loyalty.token_store"
local support = require "support.sandbox"

local MARIA = { mobile = "+357 99 000019", firstname = "Maria" }       -- wallet 12.50
local ELENI = { mobile = "35799000021", email = "eleni@example.com" }  -- wallet 120.00

describe("loyalty.program on crmcom", function()
  local sb, program

  local function settings(extra)
    local s = {
      provider = "crmcom",
      crm = { base_url = sb.url .. "/crmapi/rest/v2", username = "pos.user", password = "pos123",
              organisation = "SANDBOXORG", unit = "UNIT-LIMASSOL", token_store = token_store.private() },
    }
    for k, v in pairs(extra or {}) do s[k] = v end
    return s
  end

  lazy_setup(function()
    sb = support.start()
    program = assert(loyalty.program(settings()))
  end)
  lazy_teardown(function()
    if program then program:close() end
    if sb then sb:stop() end
  end)
  before_each(function() assert(sb:reset()) end)

  local cart = {
    lines = { { sku = "COFFEE-L", qty = 2, price = 4.76, amount = 9.52 },
              { sku = "CROISSANT", qty = 1, price = 2.98 } },
    shipping = 2, total = 14.5,
  }

  it("loads the example settings file", function()
    local s = assert(config.load("examples/crmcom.conf.lua"))
    assert.equals("crmcom", s.provider)
    assert.is_true(s.skip_redemption_otp)
    assert.is_false(s.registration)
  end)

  it("summary: the wallet balance and the scheme's spend limits", function()
    local s = assert(program:summary(MARIA))
    assert.is_true(s.enrolled)
    assert.equals(12.5, s.points)
    assert.is_true(s.can_redeem)
    local none = assert(program:summary { mobile = "35700000000" })
    assert.is_false(none.enrolled)
  end)

  it("identifier = external_id on R17: the accounts receivable number, looked up through the preview", function()
    local p = assert(loyalty.program(settings { identifier = "external_id" }))
    local s = assert(p:summary { external_id = "ACR0000000164" })
    assert.is_true(s.enrolled)
    assert.equals(12.5, s.points)
    local r = assert(p:login { external_id = "ACR0000000166" })
    assert.equals("Eleni", r.profile.firstname)
    assert.equals("Ioannou", r.profile.lastname)
    assert.is_false(assert(p:summary { external_id = "ACR0000009999" }).enrolled)
    p:close()
  end)

  it("identifier = external_id before R17: the participant number, on a server of that release", function()
    local old = support.start { crmcom_release = "R16" }
    local ok, err = pcall(function()
      local s = settings { identifier = "external_id" }
      s.crm.release, s.crm.base_url = "R16", old.url .. "/crmapi/rest/v2"
      local p16 = assert(loyalty.program(s))
      local sum = assert(p16:summary { external_id = "RP0000000019" })
      assert.equals(12.5, sum.points)
      assert.equals("Maria", assert(p16:login { external_id = "RP0000000019" }).profile.firstname)
      p16:close()
    end)
    old:stop()
    assert(ok, err)
  end)

  it("login fills names from the CRM", function()
    local r = assert(program:login { mobile = "35799000021" })
    assert.equals("Eleni", r.profile.firstname)
    assert.equals("Ioannou", r.profile.lastname)
  end)

  it("quote: within the CRM's minimum and maximum per transaction, and never more than the cart", function()
    local big = { total = 100, lines = { { sku = "COFFEE-L", qty = 1, price = 100, amount = 100 } } }
    local q = assert(program:quote_redemption(ELENI, big, 20))
    assert.is_true(q.allowed)
    assert.equals(20, q.value)
    q = assert(program:quote_redemption(ELENI, big, 60))
    assert.is_false(q.allowed)
    assert.equals("OUTSIDE_SPEND_LIMITS", q.code)
    assert.matches("maximum spend of 50.00", q.reason, 1, true)
    q = assert(program:quote_redemption(ELENI, big, 0.5))
    assert.is_false(q.allowed)
    -- the most on offer: what the cart costs (the CRM caps a spend at the purchase total), to the cent
    q = assert(program:quote_redemption(ELENI, cart))
    assert.is_true(q.allowed)
    assert.same({ 14.5, 14.5 }, { q.points, q.value })
    q = assert(program:quote_redemption(ELENI, cart, 20))
    assert.is_false(q.allowed)
    assert.matches("the order total", q.reason, 1, true)
    -- the summary's most redeemable is the CRM's maximum per transaction, not the whole wallet
    local s = assert(program:summary(ELENI))
    assert.same({ 120, 1, 50, 50 }, { s.points, s.min, s.max, s.max_value })
  end)

  it("redeem is a spend request on the order's purchase; order placed and a full return", function()
    local red = assert(program:redeem(ELENI, { points = 10, order_id = "WEB-9001", cart = cart }))
    assert.equals(10, red.points)
    assert.equals(10, red.value)
    assert.equals(4.5, red.amount_due)
    -- 120 + 5% of the 14.50 net (shipping books the Default Product, which earns too) = 0.73, - 10 spent
    assert.equals(110.73, red.balance)
    assert.equals(110.73, sb:crmcom_wallet("RP0000000021"))

    local again = assert(program:redeem(ELENI, { points = 10, order_id = "WEB-9001", cart = cart }))
    assert.equals(red.redemption_id, again.redemption_id)
    assert.equals(110.73, sb:crmcom_wallet("RP0000000021"))

    local order = { id = "WEB-9001", lines = cart.lines, shipping = cart.shipping, total = cart.total,
                    redemption = { id = red.redemption_id, points = red.points, value = red.value } }
    local placed = assert(program:order_placed(ELENI, order))
    assert.equals(0.73, placed.points_earned)     -- the same purchase: no second award
    assert.equals(4.5, placed.amount_due)
    assert.equals(110.73, placed.balance)
    assert.equals(1, #sb:crmcom_state().purchases)

    local ret = assert(program:order_returned(ELENI, order))
    assert.equals("FULL", ret.kind)
    assert.equals(0.73, ret.points_deducted)
    assert.equals(10, ret.points_reversed)
    assert.equals(120, sb:crmcom_wallet("RP0000000021"))
  end)

  it("an abandoned checkout's spend comes back: cancel_redemption cancels the order's purchase", function()
    local before = sb:crmcom_wallet("RP0000000021")
    local red = assert(program:redeem(ELENI, { points = 10, order_id = "WEB-9400", cart = cart }))
    assert.equals(before - 10 + 0.73, sb:crmcom_wallet("RP0000000021"))
    local c = assert(program:cancel_redemption(ELENI, "WEB-9400"))
    assert.is_true(c.cancelled)
    assert.equals(red.points, c.points_reversed)
    assert.equals(before, sb:crmcom_wallet("RP0000000021")) -- the spend back, the purchase's award gone
    assert.equals(before, c.balance)
    assert.is_true(assert(program:cancel_redemption(ELENI, "WEB-9400")).already)
    assert.equals(before, sb:crmcom_wallet("RP0000000021"))
  end)

  it("order placed without a redemption earns cashback", function()
    local placed = assert(program:order_placed(MARIA, { id = "WEB-9100", lines = cart.lines, total = 12.5 }))
    assert.equals(0.63, placed.points_earned)
    assert.equals(13.13, placed.balance)
    assert.equals(12.5, placed.amount_due)
  end)

  it("partial returns and redeem without a cart are config errors naming the operation", function()
    assert(program:order_placed(MARIA, { id = "WEB-9200", lines = cart.lines, total = 12.5 }))
    local r, err = program:order_returned(MARIA, { id = "WEB-9200" }, { lines = { cart.lines[1] } })
    assert.is_nil(r)
    assert.equals("config", err.kind)
    assert.matches("order_returned with lines or an amount is not available on CRM.COM", err.message, 1, true)
    r, err = program:redeem(MARIA, { points = 5, order_id = "WEB-9201" })
    assert.is_nil(r)
    assert.equals("refused", err.kind)
    assert.matches("cart", err.message, 1, true)
    assert.equals(12.5 + 0.63, sb:crmcom_wallet("RP0000000019"))
  end)

  it("operations without a CRM.COM meaning answer config errors at call time", function()
    local backend = program.backend
    for _, op in ipairs { "send_otp", "register", "subscribe", "reverse_redemption" } do
      local r, err = backend[op](backend, {}, {})
      assert.is_nil(r)
      assert.equals("config", err.kind)
      assert.equals(op, err.key)
    end
    -- through the program: sign-up and subscriptions are off, OTP is skipped
    assert.is_true(assert(program:register(MARIA)).skipped)
    assert.is_true(assert(program:subscribe(MARIA, { email = true })).skipped)
    assert.is_true(assert(program:send_otp(MARIA, 5)).skipped)
  end)

  it("settings without a CRM.COM meaning are refused at load, naming the key", function()
    local cases = {
      { { skip_redemption_otp = false }, "skip_redemption_otp" },
      { { registration = true }, "registration" },
      { { post_subscriptions = true }, "post_subscriptions" },
      { { use_order_store_till = true }, "use_order_store_till" },
      { { store_tills = {} }, "store_tills" },
      { { program_id = 7 }, "program_id" },
      { { source = "POS" }, "source" },
      { { outbox = { path = "/tmp/x.db" } }, "outbox" },
    }
    for _, case in ipairs(cases) do
      local p, err = loyalty.program(settings(case[1]))
      assert.is_nil(p)
      assert.equals("config", err.kind)
      assert.equals(case[2], err.key)
      assert.matches("provider crmcom", err.message, 1, true)
    end
    local s = settings()
    s.crm.client_key = "k"
    local p, err = loyalty.program(s)
    assert.is_nil(p)
    assert.equals("crm.client_key", err.key)
    s = settings()
    s.crm.organisation = nil
    p, err = loyalty.program(s)
    assert.is_nil(p)
    assert.equals("crm.organisation", err.key)
  end)
end)

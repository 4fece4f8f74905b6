-- Every store setting on and off, checked against what the sandbox CRM recorded.
local loyalty = require "loyalty"
local support = require "support.sandbox"

local RULES = "examples/rules"

describe("loyalty.program", function()
  local sb

  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  local function settings(extra)
    local s = {
      crm = { base_url = sb.url, username = "store.server", password = "server123", sleep = function() end },
      rules = RULES,
    }
    for k, v in pairs(extra or {}) do s[k] = v end
    return s
  end

  local function program(extra)
    return assert(loyalty.program(settings(extra)))
  end

  local function requests(path)
    return sb:state().requests[path] or 0
  end

  local function customer_by_mobile(mobile)
    for _, c in ipairs(sb:state().customers) do
      if c.mobile == mobile then return c end
    end
  end

  local function order(id, extra)
    local o = {
      id = id, total = 2597, gross = 2597,
      lines = {
        { sku = "PHONE-CASE", qty = 1, price = 1998, amount = 1998, categories = { "mobiles", "electronics" } },
        { sku = "SK-TSHIRT-M", qty = 1, price = 599, amount = 599, categories = { "fashion" } },
      },
    }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  local TOM = { mobile = "+91 99990 00001", firstname = "Thomas", email = "", tier = "SILVER" }

  describe("settings", function()
    it("reports unknown keys, wrong types and missing credentials with the key's name", function()
      local p, err = loyalty.program(settings { earn_on_orders = true })
      assert.is_nil(p)
      assert.equals("earn_on_orders", err.key)
      p, err = loyalty.program(settings { skip_redemption_otp = "yes" })
      assert.is_nil(p)
      assert.equals("skip_redemption_otp", err.key)
      assert.matches("boolean", err.message)
      p, err = loyalty.program { crm = { base_url = "http://127.0.0.1:1" } }
      assert.is_nil(p)
      assert.equals("crm.username", err.key)
      p, err = loyalty.program(settings { identifier = "phone" })
      assert.is_nil(p)
      assert.equals("identifier", err.key)
      p, err = loyalty.program(settings { profile_sync = "sometimes" })
      assert.is_nil(p)
      assert.equals("profile_sync", err.key)
      assert.has_error(function() loyalty.program(42) end)
    end)

    it("loads the documented template file", function()
      local p = assert(loyalty.program("examples/store.conf.lua"))
      assert.equals("mobile", p.settings.identifier)
      assert.is_true(p.settings.registration_crm_first)
      p:close()
    end)

    it("refuses a rules directory that does not load", function()
      local p, err = loyalty.program(settings { rules = "/nonexistent/rules" })
      assert.is_nil(p)
      assert.equals("rules", err.kind)
    end)
  end)

  describe("registration", function()
    local BECKY = { mobile = "919812345678", firstname = "Becky", lastname = "Thatcher", email = "becky@example.com" }

    it("posts a sign-up when on, and nothing when off", function()
      local r = assert(program():register(BECKY))
      assert.equals("Becky", customer_by_mobile("919812345678").firstname)
      assert.truthy(r.customer.id)
      assert(sb:reset())
      r = assert(program { registration = false }:register(BECKY))
      assert.is_true(r.skipped)
      assert.is_nil(customer_by_mobile("919812345678"))
      assert.equals(0, requests("/v1.1/customer/add"))
    end)

    it("CRM first: a CRM refusal stops the sign-up before the store account exists", function()
      assert(sb:faults { match = "/v1.1/customer/add", count = 1, action = "body_failure" })
      local created = false
      local r, err = program { registration_crm_first = true }:sign_up(BECKY, function() created = true end)
      assert.is_nil(r)
      assert.equals("api", err.kind)
      assert.is_false(created)
    end)

    it("store first: the account is kept and the CRM failure is reported", function()
      assert(sb:faults { match = "/v1.1/customer/add", count = 1, action = "body_failure" })
      local r = assert(program { registration_crm_first = false }:sign_up(BECKY, function() return "acct" end))
      assert.equals("acct", r.account)
      assert.equals("api", r.crm_error.kind)
    end)

    it("posts the sign-up's subscriptions only when posting subscriptions is on", function()
      local user = { mobile = "919812345679", firstname = "Amy", subscriptions = { email = true, sms = false } }
      assert(program():register(user))
      local subs = customer_by_mobile("919812345679").subscriptions
      assert.equals(2, #subs)
      assert(sb:reset())
      assert(program { post_subscriptions = false }:register(user))
      assert.equals(0, #(customer_by_mobile("919812345679").subscriptions or {}))
    end)

    it("uses a custom profile attribute as the unique identifier", function()
      local user = { pan_card = "ABCDE1234F", firstname = "Pan", mobile = "919800000001" }
      local p = program { identifier = "attribute:pan_card" }
      assert(p:register(user))
      local c = customer_by_mobile("919800000001")
      assert.is_nil(c.external_id) -- a custom field, not the CRM's external id
      local pan
      for _, f in ipairs(c.custom_fields) do if f.name == "pan_card" then pan = f.value end end
      assert.equals("ABCDE1234F", pan)
      local s = assert(p:summary(user))
      assert.is_true(s.enrolled)
      -- found again by the attribute alone (the CRM's custom-field search), no second record
      local again = assert(p:register { pan_card = "ABCDE1234F" })
      assert.is_true(again.existing)
      assert.equals(#sb:state().customers, 4)
    end)

    it("a member known by mobile who signs up with the attribute keeps one record and its points", function()
      local p = program { identifier = "attribute:pan_card" }
      local before = #sb:state().customers
      local r = assert(p:register { pan_card = "PANTOM0001", mobile = "919999000001", firstname = "Tom" })
      assert.is_true(r.linked)
      assert.equals(before, #sb:state().customers)
      local s = assert(p:summary { pan_card = "PANTOM0001" })
      assert.equals(2000, s.points)
      local placed = assert(p:order_placed({ pan_card = "PANTOM0001" }, order("ATTR-1")))
      assert.equals(2000 + placed.points_earned, customer_by_mobile("919999000001").loyalty_points)
      assert.equals(before, #sb:state().customers)
    end)
  end)

  describe("login sync", function()
    it("fill_blank fills only empty local fields", function()
      local r = assert(program { profile_sync = "fill_blank" }:login(TOM))
      assert.equals("Thomas", r.profile.firstname)    -- kept
      assert.equals("tom@example.com", r.profile.email) -- was blank
      assert.equals("Sawyer", r.profile.lastname)
      assert.same({ "lastname", "email", "external_id" }, r.changed)
    end)

    it("crm_wins overwrites local fields with the CRM's", function()
      local r = assert(program { profile_sync = "crm_wins" }:login(TOM))
      assert.equals("Tom", r.profile.firstname)
    end)

    it("does not call the CRM when sync on login is off", function()
      local r = assert(program { sync_on_login = false }:login(TOM))
      assert.equals("Thomas", r.profile.firstname)
      assert.equals(0, requests("/v1.1/customer/get"))
    end)
  end)

  it("posts subscriptions when on, nothing when off", function()
    assert(program():subscribe(TOM, { email = true }))
    local email
    for _, s in ipairs(customer_by_mobile("919999000001").subscriptions) do
      if s.channel:upper() == "EMAIL" then email = s end
    end
    assert.equals("1", tostring(email.is_subscribed))
    assert(sb:reset())
    local r = assert(program { post_subscriptions = false }:subscribe(TOM, { email = true }))
    assert.is_true(r.skipped)
    assert.equals(0, requests("/v1.1/customer/subscriptions"))
  end)

  it("summarises points, tier and what can be redeemed now", function()
    local s = assert(program():summary(TOM))
    assert.equals(2000, s.points)
    assert.equals("silver", s.tier)
    assert.is_true(s.can_redeem)
    assert.equals(200, s.min)
    assert.equals(2000, s.max)
    assert.equals("INR", s.currency)
    local none = assert(program():summary { mobile = "910000000000" })
    assert.is_false(none.enrolled)
  end)

  describe("earning", function()
    it("posts orders with category attributes and the rules hash when on", function()
      local p = program()
      local r = assert(p:order_placed(TOM, order("O-1")))
      assert.is_number(r.points_earned)
      local tx = sb:state().transactions[1]
      assert.equals("O-1", tx.number)
      local attrs = {}
      for _, a in ipairs(tx.line_items[1].attributes) do attrs[a.name] = a.value end
      assert.equals("mobiles", attrs.department)
      assert.equals("1 year", attrs.warranty)
      local cf = {}
      for _, f in ipairs(tx.custom_fields) do cf[f.name] = f.value end
      assert.equals(p:ruleset().hash, cf.rules_hash)
    end)

    it("posts nothing when earning is off", function()
      local r = assert(program { earn_on_order = false }:order_placed(TOM, order("O-2")))
      assert.is_true(r.skipped)
      assert.equals(0, #sb:state().transactions)
    end)

    it("posts email-only orders only when that setting is on", function()
      local mailer = { email = "tom@example.com", firstname = "Tom" }
      local r = assert(program { post_email_only_orders = false }:order_placed(mailer, order("O-3")))
      assert.is_true(r.skipped)
      assert.equals(0, #sb:state().transactions)
      assert(program { post_email_only_orders = true }:order_placed(mailer, order("O-3")))
      local tx = sb:state().transactions[1]
      assert.equals(343445001, tx.customer_id)
    end)

    it("posts against the order's store till when on, the default till when off", function()
      assert(program {
        use_order_store_till = true,
        store_tills = { ["store.two"] = { username = "store.two.till", password = "till456" } },
      }:order_placed(TOM, order("O-4", { store_code = "store.two" })))
      assert(program { use_order_store_till = false }:order_placed(TOM, order("O-5", { store_code = "store.two" })))
      local txs = sb:state().transactions
      assert.equals("store.two.till", txs[1].attribution.till)
      assert.equals("store.server", txs[2].attribution.till)
    end)

    it("attributes OAuth postings to the order's store with attribution headers", function()
      local s = settings { use_order_store_till = true }
      s.crm = { base_url = sb.url, client_key = support.OAUTH_KEY, client_secret = support.OAUTH_SECRET }
      local p = assert(loyalty.program(s))
      assert(p:order_placed(TOM, order("O-6", { store_code = "store.two" })))
      local a = sb:state().transactions[1].attribution
      assert.equals("store.two", a.store)
      assert.equals("header", a.via)
    end)

    it("returns the error with the order id when the CRM cannot take the order", function()
      assert(sb:faults { match = "/v1.1/transaction/add", count = 5, status = 503 })
      local r, err = program():order_placed(TOM, order("O-7"))
      assert.is_nil(r)
      assert.equals("O-7", err.order_id)
      assert.is_true(err.retryable)
    end)
  end)

  describe("redemption", function()
    local cart = {
      lines = { { sku = "TV-55", qty = 1, price = 40000, amount = 40000, categories = { "electronics" } } },
      total = 40000,
    }

    it("without rules, the balance is the only limit", function()
      local s = settings()
      s.rules = nil
      local p = assert(loyalty.program(s))
      local q = assert(p:quote_redemption(TOM, cart, 2500))
      assert.is_false(q.allowed)
      assert.matches("limited by the customer's balance", q.reason, 1, true)
      q = assert(p:quote_redemption(TOM, cart, 150))
      assert.is_true(q.allowed)
      assert.equals(0, q.min)
      assert.equals(2000, q.max)
    end)

    it("refuses below the minimum without asking the CRM", function()
      local q = assert(program():quote_redemption(TOM, cart, 150))
      assert.is_false(q.allowed)
      assert.equals(200, q.min)
      -- one isredeemable for the CRM's value of a point (the balance), none for the 150 points
      assert.equals(1, requests("/v1.1/points/isredeemable"))
    end)

    it("quotes an allowed amount with the CRM's value", function()
      local q = assert(program():quote_redemption(TOM, cart, 500))
      assert.is_true(q.allowed)
      assert.equals(500, q.points)
      assert.equals(250, q.value) -- the sandbox CRM pays 0.5 per point
      assert.equals(2, requests("/v1.1/points/isredeemable")) -- the rate, then the 500 points
    end)

    it("with OTP on: needs the code, refuses a wrong one, redeems with the right one", function()
      local p = program { skip_redemption_otp = false }
      local _, err = p:redeem(TOM, { points = 500, order_id = "O-10", cart = cart })
      assert.equals("refused", err.kind)
      assert.equals(0, requests("/v1.1/points/redeem"))
      assert(p:send_otp(TOM, 500))
      _, err = p:redeem(TOM, { points = 500, order_id = "O-10", otp = "WRONG1", cart = cart })
      assert.equals(808, err.code)
      local code = assert(sb:otp { mobile = "919999000001" })
      local r = assert(p:redeem(TOM, { points = 500, order_id = "O-10", otp = code, cart = cart }))
      assert.equals(1500, r.balance)
      assert.is_string(r.redemption_id)
    end)

    it("with OTP skipped: redeems directly, and a retried redeem debits once", function()
      local p = program { skip_redemption_otp = true }
      local r1 = assert(p:redeem(TOM, { points = 500, order_id = "O-11", cart = cart }))
      local r2 = assert(p:redeem(TOM, { points = 500, order_id = "O-11", cart = cart }))
      assert.equals(r1.redemption_id, r2.redemption_id)
      assert.equals(1500, customer_by_mobile("919999000001").loyalty_points)
      local skip = p:send_otp(TOM, 500)
      assert.is_true(skip.skipped)
    end)

    it("refuses amounts off the multiple before any redeem call", function()
      local p = program { skip_redemption_otp = true }
      local _, err = p:redeem(TOM, { points = 230, order_id = "O-12", cart = cart })
      assert.equals("refused", err.kind)
      assert.equals(50, err.multiple_of)
      assert.equals(0, requests("/v1.1/points/redeem"))
    end)
  end)

  describe("returns", function()
    local cart = { total = 2597 }
    it("a line return gives back that line's points; a full return reverses the redemption", function()
      local p = program { skip_redemption_otp = true }
      local red = assert(p:redeem(TOM, { points = 500, order_id = "O-20", cart = cart }))
      local o = order("O-20", { redemption = { id = red.redemption_id, points = 500, value = red.value } })
      local placed = assert(p:order_placed(TOM, o))
      local line = assert(p:order_returned(TOM, o, { lines = { o.lines[2] } }))
      assert.equals("LINE_ITEM", line.kind)
      assert.is_true(line.points_deducted <= placed.points_earned)
      local full = assert(p:order_returned(TOM, o))
      assert.equals("FULL", full.requested_kind)
      assert.equals("LINE_ITEM", full.kind) -- what remains, by lines (the CRM refuses FULL after a partial return)
      -- the redemption comes back in proportion: the line's share, then the rest
      assert.equals(math.floor(500 * 599 / 2597), line.points_reversed)
      assert.equals(500, line.points_reversed + full.points_reversed)
      local st = sb:state()
      assert.is_true(st.redemptions[1].reversed)
    end)
  end)
end)

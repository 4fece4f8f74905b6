-- Order data whose numbers are not numbers (a quantity "abc", a price table, NaN, inf, a
-- redemption that is not a table) are refused as config errors naming the field and carrying
-- the order id (the caller still has the order), before any request; never a raise. Both providers.
local loyalty = require "loyalty"
local fake = require "support.fake_transport"
local token_store = require "loyalty.token_store"

local BAD = { "abc", "", {}, true, 0 / 0, 1 / 0, -1 / 0, "1e400", "nan" }

local function program(provider, transport)
  local crm = { base_url = "http://127.0.0.1:9", username = "till", password = "s3cret-pass", transport = transport,
                sleep = function() end, max_attempts = 1 }
  if provider == "crmcom" then
    crm.organisation, crm.unit, crm.token_store = "ORG", "UNIT", token_store.private()
  end
  return assert(loyalty.program { provider = provider, crm = crm, skip_redemption_otp = true,
                                  post_email_only_orders = true })
end

local function line() return { sku = "A", qty = 1, price = 10, amount = 10 } end

for _, provider in ipairs { "capillary", "crmcom" } do
  describe("order values (" .. provider .. ")", function()
    local t, p
    before_each(function()
      t = fake.new(function() return { err = { kind = "network", message = "no CRM in this spec" } } end)
      p = program(provider, t)
    end)
    after_each(function() p:close() end)

    local function refused(call, key)
      local ok, r, err = pcall(call)
      assert.is_true(ok, "raised: " .. tostring(r))
      assert.is_nil(r)
      assert.equals("config", err.kind)
      assert.equals(key, err.key)
      assert.equals("O-1", err.order_id)
      assert.equals(0, #t.requests, "a request was made for " .. key)
    end

    for _, v in ipairs(BAD) do
      local shown = type(v) == "string" and ("%q"):format(v) or tostring(v)
      it("order_placed and order_returned refuse a line's qty, price, amount or discount = " .. shown, function()
        for _, f in ipairs { "qty", "price", "amount", "discount" } do
          local l = line()
          l[f] = v
          refused(function() return p:order_placed({ mobile = "919999000001" },
            { id = "O-1", lines = { line(), l }, total = 20 }) end, "order.lines[2]." .. f)
          if provider == "capillary" then
            refused(function() return p:order_returned({ mobile = "919999000001" },
              { id = "O-1", lines = { line() }, total = 10 }, { lines = { l } }) end, "lines[1]." .. f)
          end
        end
      end)

      it("order_placed refuses an order total, gross, discount, shipping or tax = " .. shown, function()
        for _, f in ipairs { "total", "gross", "discount", "shipping", "tax" } do
          refused(function()
            local o = { id = "O-1", lines = { line() }, total = 10 }
            o[f] = v
            return p:order_placed({ mobile = "919999000001" }, o)
          end, "order." .. f)
        end
        if provider == "capillary" then
          refused(function() return p:order_returned({ mobile = "919999000001" }, { id = "O-1", lines = { line() } },
                                                     { amount = v }) end, "amount")
        end
      end)
    end

    it("a line's sku or serial that is neither text nor a number is refused", function()
      for _, f in ipairs { "sku", "serial" } do
        for _, v in ipairs { {}, true } do
          local l = line()
          l[f] = v
          refused(function() return p:order_placed({ mobile = "919999000001" },
            { id = "O-1", lines = { line(), l }, total = 20 }) end, "order.lines[2]." .. f)
        end
      end
    end)

    it("a line or a redemption that is not a table is refused, not indexed", function()
      for _, v in ipairs { 5, "line", true } do
        refused(function() return p:order_placed({ mobile = "919999000001" },
          { id = "O-1", lines = { line(), v }, total = 20 }) end, "order.lines[2]")
        refused(function() return p:order_placed({ mobile = "919999000001" },
          { id = "O-1", lines = { line() }, total = 10, redemption = v }) end, "order.redemption")
      end
    end)

    it("numbers written as text are numbers", function()
      local l = { sku = "A", qty = "2", price = "5", amount = "10" }
      local ok, r, err = pcall(p.order_placed, p, { mobile = "919999000001" },
                               { id = "O-1", lines = { l }, total = "10" })
      assert.is_true(ok, tostring(r))
      assert.is_nil(r)
      assert.are_not.equals("config", err.kind) -- it went on to the (absent) CRM
      assert.is_true(#t.requests > 0)
    end)
  end)
end

describe("points a shopper typed (quote_redemption)", function()
  it("text that is not a finite number is refused before any request; a number written as text is a number",
    function()
    local t = fake.new(function() return { err = { kind = "network", message = "no CRM in this spec" } } end)
    local p = program("capillary", t)
    for _, v in ipairs { "abc", "", {}, true, 0 / 0, 1 / 0, "1e400", ("9"):rep(500) .. "x" } do
      local ok, r, err = pcall(p.quote_redemption, p, { mobile = "919999000001" }, { total = 1000 }, v)
      assert.is_true(ok, "raised: " .. tostring(r))
      assert.is_nil(r)
      assert.same({ "refused", "points" }, { err.kind, err.field })
    end
    assert.equals(0, #t.requests)
    local ok, r, err = pcall(p.quote_redemption, p, { mobile = "919999000001" }, { total = 1000 }, "300")
    assert.is_true(ok, tostring(r))
    assert.equals("network", err.kind) -- it went on to the (absent) CRM
    p:close()
  end)
end)

describe("the cart a redemption pays for", function()
  it("an infinite or NaN total (given, or summed from lines) is no cart: refused before any request", function()
    local t = fake.new(function() return { err = { kind = "network", message = "no CRM in this spec" } } end)
    local p = program("capillary", t)
    for _, cart in ipairs { 1 / 0, { total = 1 / 0 }, { lines = { { amount = 1 / 0 } } },
                            { lines = { { amount = 0 / 0 } } }, { lines = { { amount = 10 } }, shipping = 1 / 0 } } do
      local r, err = p:redeem({ mobile = "919999000001" }, { points = 200, order_id = "O-INF", cart = cart })
      assert.is_nil(r)
      assert.same({ "refused", "cart" }, { err.kind, err.field })
      r, err = p:quote_redemption({ mobile = "919999000001" }, type(cart) == "table" and cart or { total = cart })
      assert.is_nil(r)
      assert.equals("refused", err.kind)
    end
    assert.equals(0, #t.requests)
    p:close()
  end)
end)

describe("sign-up data", function()
  it("custom_fields, extended_fields or subscriptions that are not tables are config errors, never a raise",
    function()
    local t = fake.new(function() return { err = { kind = "network", message = "no CRM in this spec" } } end)
    local p = program("capillary", t)
    for _, key in ipairs { "custom_fields", "extended_fields", "subscriptions" } do
      for _, v in ipairs { 5, "Green", true } do -- (JSON null and false mean none)
        local user = { mobile = "919800000099", firstname = "New" }
        user[key] = v
        local ok, r, err = pcall(p.register, p, user)
        assert.is_true(ok, "raised: " .. tostring(r))
        assert.is_nil(r)
        assert.same({ "config", key }, { err.kind, err.key })
        -- the store-first sign-up keeps the account and reports the CRM side's error
        local made = 0
        ok, r = pcall(p.sign_up, p, user, function() made = made + 1 return { id = made } end)
        assert.is_true(ok, "raised: " .. tostring(r))
        assert.equals(1, made)
        assert.equals(key, r.crm_error.key)
      end
    end
    assert.equals(0, #t.requests)
    -- JSON null is no value: the sign-up goes on to the (absent) CRM
    local null = require("cjson").null
    local ok, r, err = pcall(p.register, p, { mobile = "919800000099", custom_fields = null, extended_fields = null,
                                             subscriptions = null })
    assert.is_true(ok, "raised: " .. tostring(r))
    assert.equals("network", err.kind)
    p:close()
  end)
end)

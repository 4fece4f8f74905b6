-- Identifiers and inputs with CR/LF, NUL or oversized values are refused before any request is
-- made (the transport would raise if it were called), and secrets never reach errors.
local loyalty = require "loyalty"
local fake = require "support.fake_transport"

local BAD = { "9199\r\n", "91\n99", "91\0" .. "99", ("9"):rep(300) }

local function client(extra)
  local opts = { base_url = "http://127.0.0.1:9", username = "till", password = "s3cret-pass",
                 transport = fake.new(function(req) error("no request may be made: " .. req.url) end),
                 sleep = function() end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(loyalty.client(opts))
end

describe("input hardening", function()
  it("the client refuses bad customer identifiers in every lookup", function()
    local c = client()
    for _, v in ipairs(BAD) do
      for _, op in ipairs { "customer_get", "points_isredeemable", "points_validation_code", "coupon_isredeemable" } do
        for _, key in ipairs { "mobile", "email", "external_id", "id" } do
          local r, err = c[op](c, { [key] = v, points = 100 })
          assert.is_nil(r, op .. " " .. key)
          assert.equals("config", err.kind)
          assert.equals(key, err.key)
        end
      end
      local r, err = c:transaction_get { number = v }
      assert.is_nil(r)
      assert.equals("config", err.kind)
      r, err = c:v2_customer_get(v)
      assert.is_nil(r)
      assert.equals("config", err.kind)
      r, err = c:v2_customer_update(v, {})
      assert.is_nil(r)
      assert.equals("config", err.kind)
    end
    local r, err = c:v2_customer_get("../../admin")
    assert.is_nil(r)
    assert.equals("config", err.kind)
  end)

  it("the client refuses CR/LF/NUL in headers and attribution before sending", function()
    local c = client()
    for _, v in ipairs { "S1\r\nX-Injected: 1", "S1\nX", "S1\0" } do
      local r, err = c:request { method = "GET", path = "/v1.1/customer/get", version = "v1.1",
                                 query = { mobile = "919999000001" },
                                 attribution = { entity_type = "STORE_CODE", entity_code = v } }
      assert.is_nil(r)
      assert.equals("config", err.kind)
      r, err = c:request { method = "GET", path = "/v1.1/customer/get", version = "v1.1", headers = { ["X-A"] = v } }
      assert.is_nil(r)
      assert.equals("config", err.kind)
    end
    assert.is_nil(loyalty.client { base_url = "http://x", username = "u", password = "p",
                                   transport = fake.new(), attribution = { entity_code = "A\r\nB" } }
                  :request { method = "GET", path = "/v1.1/customer/get", version = "v1.1" })
  end)

  describe("the program", function()
    local function program(extra)
      local s = { crm = { base_url = "http://127.0.0.1:9", username = "till", password = "s3cret-pass",
                          transport = fake.new(function(req) error("no request may be made: " .. req.url) end),
                          sleep = function() end } }
      for k, v in pairs(extra or {}) do s[k] = v end
      return assert(loyalty.program(s))
    end
    local lines = { { sku = "A", qty = 1, price = 10, amount = 10 } }

    it("refuses bad order ids, store codes and redemption ids", function()
      local p = program()
      local user = { mobile = "919999000001" }
      for _, v in ipairs { "O-1\r\n", "O\n1", "O\0" .. "1", ("O"):rep(200), "" } do
        local r, err = p:order_placed(user, { id = v, lines = lines, total = 10 })
        assert.is_nil(r)
        assert.equals("order.id", err.key)
        r, err = p:order_returned(user, { id = v, lines = lines, total = 10 })
        assert.is_nil(r)
        assert.equals("order.id", err.key)
        r, err = p:order_placed(user, { id = "O-2", store_code = v, lines = lines, total = 10 })
        assert.is_nil(r)
        assert.equals("order.store_code", err.key)
        r, err = p:order_returned(user, { id = "O-2", lines = lines, redemption = { id = v, points = 1 } })
        assert.is_nil(r)
        assert.equals("order.redemption.id", err.key)
        r, err = p:redeem(user, { points = 100, order_id = v, otp = "123456" })
        assert.is_nil(r)
        assert.equals("order_id", err.key)
      end
    end)

    it("refuses bad user identifiers in every operation", function()
      local p = program()
      for _, v in ipairs(BAD) do
        local user = { mobile = v, email = "x@example.com" }
        for _, call in ipairs {
          function() return p:order_placed(user, { id = "O-3", lines = lines, total = 10 }) end,
          function() return p:summary(user) end,
          function() return p:subscribe(user, { email = true }) end,
          function() return p:register(user) end,
          function() return p:send_otp(user, 100) end,
        } do
          local r, err = call()
          assert.is_nil(r)
          assert.equals("config", err.kind)
        end
      end
    end)
  end)

  it("secrets never appear in client errors", function()
    local c = client { transport = fake.new(function()
      return { status = 500, body = '{"response":{"status":{"success":false,"code":500,"message":"bad s3cret-pass"}}}' }
    end), max_attempts = 1 }
    local _, err = c:customer_get { mobile = "919999000001" }
    local text = tostring(err) .. tostring(err.message)
    assert.is_nil(text:find("s3cret-pass", 1, true))
    assert.matches("REDACTED", text)
  end)
end)

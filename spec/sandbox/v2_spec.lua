-- v2 customers, transactions and OTP endpoints of the sandbox, over HTTP.
local support = require("support.sandbox")

describe("sandbox v2", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  it("POST /v2/customers registers and answers createdId/warnings/sideEffects", function()
    local r = sb:post("/v2/customers", { loyaltyInfo = { loyaltyType = "loyalty" }, associatedWith = "store.server",
      profiles = { { firstName = "Tom", lastName = "Thumb", source = "INSTORE",
        identifiers = { { type = "mobile", value = "919010000022" }, { type = "email", value = "tt@example.com" } },
        fields = { employee = "true" } } }, extendedFields = { gender = "Male" } })
    assert.equal(200, r.status)
    assert.is_number(r.json.createdId)
    assert.same({}, r.json.warnings)
    assert.same({}, r.json.sideEffects)
    local id = r.json.createdId
    local again = sb:post("/v2/customers", { profiles = { { source = "INSTORE",
      identifiers = { { type = "mobile", value = "919010000022" } } } } })
    assert.equal(400, again.status)
    assert.equal(8007, again.json.errors[1].code)
    local merged = sb:post("/v2/customers", { profiles = { { source = "WEBSITE",
      identifiers = { { type = "mobile", value = "919010000022" } } } } })
    assert.equal(id, merged.json.createdId)
    assert.equal(8050, merged.json.warnings[1].code)
    local bad = sb:post("/v2/customers", { profiles = { { identifiers = {} } } })
    assert.equal(400, bad.status)
    assert.equal(8013, bad.json.errors[1].code)
  end)

  it("lookup finds the id; 8015 when nobody has the identifier", function()
    local r = sb:get("/v2/customers/lookup?source=INSTORE&identifierName=mobile&identifierValue=919999000001")
    assert.equal(200, r.status)
    assert.is_number(r.json.entity)
    assert.same({}, r.json.warnings)
    local nf = sb:get("/v2/customers/lookup?source=INSTORE&identifierName=mobile&identifierValue=910000000000")
    assert.equal(404, nf.status)
    assert.equal(8015, nf.json.errors[1].code)
    local bad = sb:get("/v2/customers/lookup?source=NOWHERE&identifierName=mobile&identifierValue=1")
    assert.equal(8011, bad.json.errors[1].code)
  end)

  it("GET /v2/customers/{id}?embed=points,subscriptions and PUT updates", function()
    local id = string.format("%d", sb:get(
      "/v2/customers/lookup?source=INSTORE&identifierName=email&identifierValue=tom@example.com").json.entity)
    local r = sb:get("/v2/customers/" .. id .. "?source=INSTORE&embed=points,subscriptions")
    assert.equal(200, r.status)
    assert.equal("Tom", r.json.profiles[1].firstName)
    assert.equal(2000, r.json.pointsSummary.loyaltyPoints)
    assert.equal("silver", r.json.pointsSummary.currentSlab)
    assert.equal("OPTIN", r.json.subscriptionInfo.subscriptions[1].type)
    local put = sb:put("/v2/customers/" .. id .. "?source=INSTORE", { profiles = { { firstName = "Thomas" } } })
    assert.equal(200, put.status)
    assert.equal(tonumber(id), put.json.createdId)
    assert.equal("Thomas", sb:get("/v2/customers/" .. id).json.profiles[1].firstName)
    assert.equal(404, sb:get("/v2/customers/1").status)
    assert.equal(8009, sb:put("/v2/customers/1", { profiles = {} }).json.errors[1].code)
  end)

  it("POST /v2/transactions reports points earned as sideEffects, 604 on a duplicate", function()
    local q = "/v2/transactions?source=INSTORE&identifierName=mobile&identifierValue=919999000003"
    local body = { type = "REGULAR", billNumber = "num-1234", billAmount = "2000", grossAmount = "2010",
      discount = "10", customFields = { paymentmode = "cash" },
      lineItemsV2 = { { itemCode = "sku_234_2", amount = 2000, rate = 2000, qty = 1 } } }
    local r = sb:post(q, body)
    assert.equal(200, r.status)
    assert.is_number(r.json.createdId)
    assert.same({}, r.json.errors)
    -- Huck is gold: 2000 x 0.01 x 1.5 = 30
    assert.same({ entityType = "USER", rawAwardedPoints = 30, awardedPoints = 30, type = "points" },
      r.json.sideEffects[1])
    assert.equal("Huck", r.json.customerInfo.firstName)
    local dup = sb:post(q, body)
    assert.equal(400, dup.status)
    assert.equal(604, dup.json.errors[1].code)
    local nobody = sb:post("/v2/transactions?source=INSTORE&identifierName=mobile&identifierValue=910000000000", body)
    assert.equal(8015, nobody.json.errors[1].code)
    local ret = sb:post(q, { type = "RETURN", returnType = "FULL", billNumber = "num-1234", billAmount = "2000" })
    assert.equal(-30, ret.json.sideEffects[1].awardedPoints)
  end)

  it("OTP generate / GET / validate, with the documented input errors", function()
    local body = { entityType = "MOBILE", entityValue = "919999000001", action = "GENERIC",
      channels = { { type = "SMS", value = "919999000001" } } }
    local g = sb:post("/v2/otp/generate", body)
    assert.equal(200, g.status)
    assert.is_number(g.json.createdId)
    assert.same({}, g.json.warnings)
    local cur = sb:get("/v2/otp?source=INSTORE&identifierName=mobile&identifierValue=919999000001&scope=GENERIC")
    assert.equal(200, cur.status)
    assert.is_string(cur.json.code)
    assert.equal(100458, cur.json.orgId)
    assert.is_string(cur.json.validUpto)
    local again = sb:post("/v2/otp/generate", body)
    assert.equal(g.json.createdId, again.json.createdId)
    local wrong = sb:post("/v2/otp/validate", { entityType = "MOBILE", entityValue = "919999000001",
      action = "GENERIC", code = "ZZZZZZ" })
    assert.equal(false, wrong.json.entity)
    local ok = sb:post("/v2/otp/validate", { entityType = "MOBILE", entityValue = "919999000001",
      action = "GENERIC", code = cur.json.code })
    assert.same({ entity = true, warnings = {} }, ok.json)
    local invalid = sb:post("/v2/otp/generate", { entityType = "MOBILE" })
    assert.equal(400, invalid.status)
    local codes = {}
    for _, e in ipairs(invalid.json.errors) do codes[#codes + 1] = e.code end
    assert.same({ 600, 602 }, codes)
    assert.equal(9001, sb:get("/v2/otp?identifierName=mobile&identifierValue=917713643123&scope=GENERIC")
      .json.errors[1].code)
  end)

  it("OTPs work for identifiers that are not customers yet (registration)", function()
    local body = { entityType = "email", entityValue = "newbie@example.com", action = "REGISTRATION" }
    assert.equal(200, sb:post("/v2/otp/generate", body).status)
    local code = sb:otp({ entity_type = "email", entity_value = "newbie@example.com" }, "REGISTRATION")
    assert.is_string(code)
    body.code = code
    assert.equal(true, sb:post("/v2/otp/validate", body).json.entity)
  end)

  it("the 11th OTP of the day for a user answers 429", function()
    local body = { entityType = "EMAIL", entityValue = "rita.john@example.com", action = "POINTS" }
    for _ = 1, 10 do assert.equal(200, sb:post("/v2/otp/generate", body).status) end
    local r = sb:post("/v2/otp/generate", body)
    assert.equal(429, r.status)
    assert.equal(429, r.json.errors[1].code)
    assert.matches("maximum of 10 OTPs", r.json.errors[1].message)
  end)
end)

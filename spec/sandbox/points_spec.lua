-- Points (isredeemable, validation codes, redeem, reverse) and coupons, over HTTP.
local support = require("support.sandbox")

describe("sandbox points and coupons", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  -- program_id is mandatory on isredeemable (S-DOCS check-if-points-redeemable); the seed's is 1016.
  local function isredeemable(q)
    return sb:get("/v1.1/points/isredeemable?format=json&program_id=1016&" .. q).json.response
  end

  it("isredeemable refuses a missing or unknown program_id as invalid input (HTTP 400)", function()
    for _, q in ipairs { "", "&program_id=7" } do
      local r = sb:get("/v1.1/points/isredeemable?format=json&mobile=919999000001&points=100" .. q)
      assert.equal(400, r.status)
      assert.equal(400, r.json.response.status.code)
    end
  end)

  it("816 (customer not found) comes under HTTP 400 on points calls, as the redeem-points OpenAPI files it", function()
    local r = sb:get("/v1.1/points/isredeemable?format=json&program_id=1016&mobile=910000000000&points=100")
    assert.equal(400, r.status)
    assert.equal(816, r.json.response.points.redeemable.item_status.code)
    r = sb:post("/v1.1/points/redeem?format=json&skip_validation=true",
                { root = { redeem = { { points_redeemed = 100, customer = { mobile = "910000000000" } } } } })
    assert.equal(400, r.status)
    assert.equal(816, r.json.response.responses.points.item_status.code)
  end)

  it("isredeemable answers the documented clean shape", function()
    local r = isredeemable("mobile=919999000001&points=100&program_id=1016")
    assert.same({ success = "true", code = 200, message = "Success" }, r.status)
    local p = r.points.redeemable
    assert.equal("true", p.is_redeemable)
    assert.equal(100, p.points)
    assert.equal(50, p.points_redeem_value)
    assert.equal("0.5", p.points_currency_ratio)
    assert.equal("points", p.input_type)
    assert.same({ success = "true", code = 800, message = "Points can be redeemed" }, p.item_status)
  end)

  it("isredeemable enforces the limits with the documented codes", function()
    local function code(q) return isredeemable(q).points.redeemable.item_status.code end
    assert.equal(801, code("mobile=919999000001&points=0"))
    assert.equal(821, code("mobile=919999000001&points=50"))
    assert.equal(819, code("mobile=919999000003&points=6000"))
    assert.equal(807, code("mobile=919999000001&points=105"))
    assert.equal(803, code("mobile=917713643123&points=100"))
    assert.equal(816, code("mobile=910000000000&points=100"))
    assert.equal(878, code("mobile=919999000001&points=100.0001"))
    assert.equal("false", isredeemable("mobile=917713643123&points=100").points.redeemable.is_redeemable)
  end)

  it("validationcode issues a code, reissued unchanged inside its validity", function()
    local r = sb:get("/v1.1/points/validationcode?format=json&mobile=919999000001&points=100").json.response
    assert.same({ success = "true", code = "200", message = "Operation Successful" }, r.status)
    local c = r.validation_code.code
    assert.equal("100", c.points)
    assert.is_string(c.user_id)
    assert.same({ success = "true", code = "200", message = "Validation Code Issued by SMS/Email" }, c.item_status)
    local first = sb:otp("mobile", "919999000001")
    assert.is_string(first)
    sb:get("/v1.1/points/validationcode?mobile=919999000001&points=100")
    assert.equal(first, sb:otp { mobile = "919999000001" })
    assert.equal(801, tonumber(sb:get("/v1.1/points/validationcode?mobile=919999000001&points=-3")
      .json.response.validation_code.code.item_status.code))
  end)

  local function redeem(item, query)
    return sb:post("/v1.1/points/redeem?format=json" .. (query or ""), { root = { redeem = { item } } })
      .json.response
  end

  it("redeem with the OTP from isredeemable(issue_otp) debits points, documented shape", function()
    isredeemable("mobile=919999000001&points=200&issue_otp=true")
    local code = assert(sb:otp("mobile", "919999000001"))
    local r = redeem({ points_redeemed = 200, customer = { mobile = "919999000001" }, validation_code = code,
      external_reference_number = "ext-1", transaction_number = "bilnum100000", notes = "n",
      custom_fields = { field = { { name = "point_transfered_to", value = "9777788221" } } } })
    assert.same({ success = "true", code = 200, message = "Success" }, r.status)
    local p = r.responses.points
    assert.same({ success = "true", code = 800, message = "Points Redeemed" }, p.item_status)
    assert.equal("200", p.points_redeemed)
    assert.equal(1800, p.balance)
    assert.equal(100, p.redeemed_value)
    assert.matches("^%w%w%w%w%w%w$", p.redemption_id)
    local e = p.side_effects.effect[1]
    assert.equal("points", e.type)
    assert.equal(code, e.validation_code)
    assert.equal("bilnum100000", e.redeemed_on_bill_number)
    -- the code was consumed
    local again = redeem({ points_redeemed = 200, customer = { mobile = "919999000001" }, validation_code = code })
    assert.equal(808, again.responses.points.item_status.code)
    -- the same external reference returns the original without debiting again [INF]
    local dup = redeem({ points_redeemed = 200, customer = { mobile = "919999000001" }, validation_code = "X",
      external_reference_number = "ext-1" })
    assert.equal(p.redemption_id, dup.responses.points.redemption_id)
    local cust = sb:get("/v1.1/customer/get?mobile=919999000001").json.response.customers.customer[1]
    assert.equal(1800, cust.loyalty_points)
    local state = sb:state()
    assert.equal(1, #state.redemptions)
    assert.equal("ext-1", state.redemptions[1].external_reference_number)
  end)

  it("redeem needs a valid code unless skip_validation=true, and enforces limits", function()
    local r = redeem({ points_redeemed = 100, customer = { mobile = "919999000001" } })
    assert.equal(808, r.responses.points.item_status.code)
    assert.equal("false", r.status.success)
    r = redeem({ points_redeemed = 100, customer = { mobile = "919999000001" }, validation_code = "WRONG1" })
    assert.equal(808, r.responses.points.item_status.code)
    local skip = "&skip_validation=true"
    assert.equal(801, redeem({ points_redeemed = 0, customer = { mobile = "919999000001" } }, skip)
      .responses.points.item_status.code)
    assert.equal(821, redeem({ points_redeemed = 10, customer = { mobile = "919999000001" } }, skip)
      .responses.points.item_status.code)
    assert.equal(807, redeem({ points_redeemed = 115, customer = { mobile = "919999000001" } }, skip)
      .responses.points.item_status.code)
    assert.equal(819, redeem({ points_redeemed = 9000, customer = { mobile = "919999000003" } }, skip)
      .responses.points.item_status.code)
    assert.equal(803, redeem({ points_redeemed = 3000, customer = { mobile = "919999000001" } }, skip)
      .responses.points.item_status.code)
    assert.equal(816, redeem({ points_redeemed = 100, customer = { mobile = "910000000000" } }, skip)
      .responses.points.item_status.code)
    local ok = redeem({ points_redeemed = 100, customer = { mobile = "919999000001" } }, skip)
    assert.equal(1900, ok.responses.points.balance)
  end)

  it("the daily OTP limit answers 860 on v1.1 after 10 codes", function()
    for _ = 1, 10 do
      local r = sb:get("/v1.1/points/validationcode?mobile=919999000001&points=100").json.response
      assert.equal("true", r.status.success)
    end
    local r = sb:get("/v1.1/points/validationcode?mobile=919999000001&points=100").json.response
    assert.equal("860", r.validation_code.code.item_status.code)
    local w = isredeemable("mobile=919999000001&points=100&issue_otp=true").points.redeemable
    assert.equal("true", w.is_redeemable)
    assert.same({ 876 }, w.item_status.warnings.warning)
  end)

  it("v2 points/reverse gives points back once, then 3802", function()
    local r = redeem({ points_redeemed = 300, customer = { mobile = "919999000001" } }, "&skip_validation=true")
    local rid = r.responses.points.redemption_id
    local body = { redemptionId = rid, pointsToBeReversed = 300,
      identifier = { type = "mobile", value = "919999000001" } }
    local rev = sb:post("/v2/points/reverse", body)
    assert.equal(200, rev.status)
    assert.equal(rid, rev.json.redemptionId)
    assert.equal(300, rev.json.pointsReversed)
    assert.equal(100458, rev.json.orgId)
    assert.matches("^%w+$", rev.json.reversalId)
    assert.same({}, rev.json.warnings)
    local cust = sb:get("/v1.1/customer/get?mobile=919999000001").json.response.customers.customer[1]
    assert.equal(2000, cust.loyalty_points)
    local again = sb:post("/v2/points/reverse", body)
    assert.equal(400, again.status)
    assert.equal(3802, again.json.errors[1].code)
    assert.equal(false, again.json.errors[1].status)
    body.redemptionId = "nope00"
    assert.equal(902, sb:post("/v2/points/reverse", body).json.errors[1].code)
    body.redemptionId, body.identifier.value = rid, "917713643123"
    assert.equal(904, sb:post("/v2/points/reverse", body).json.errors[1].code)
  end)

  it("coupon/isredeemable and coupon/redeem, with 711 on a second redeem", function()
    local r = sb:get("/v1.1/coupon/isredeemable?mobile=919999000001&code=SAVE10TOM&details=true&format=json")
    assert.same({ success = "true", code = "200", message = "SUCCESS" }, r.json.response.status)
    local c = r.json.response.coupons.redeemable
    assert.equal("true", c.is_redeemable)
    assert.equal("700", c.item_status.code)
    assert.equal("ABS", c.series_info.discount_type)
    local body = { root = { coupon = { code = "SAVE10TOM", customer = { mobile = "919999000001" },
      transaction = { number = "bill-110", amount = "1000" } } } }
    local red = sb:post("/v1.1/coupon/redeem?format=json", body).json.response
    assert.equal("true", red.status.success)
    local cp = red.coupons.coupon
    assert.same({ success = "true", code = "700", message = "Coupon processing successful" }, cp.item_status)
    assert.equal("true", cp.is_absolute)
    assert.equal("10", cp.coupon_value)
    assert.equal("bill-110", cp.transaction.number)
    local second = sb:post("/v1.1/coupon/redeem", body).json.response
    assert.equal("711", second.coupons.coupon.item_status.code)
    local after = sb:get("/v1.1/coupon/isredeemable?mobile=919999000001&code=SAVE10TOM").json.response
    assert.equal("706", after.coupons.redeemable.item_status.code)
    assert.equal("false", after.coupons.redeemable.is_redeemable)
    local function problem(q) return sb:get("/v1.1/coupon/isredeemable?" .. q).json.response.coupons.redeemable end
    assert.equal("702", problem("mobile=919999000001&code=NOPE").item_status.code)
    assert.equal("703", problem("mobile=917713643123&code=SAVE10TOM").item_status.code)
    assert.equal("712", problem("mobile=919999000001&code=OLD5TOM").item_status.code)
    assert.equal("701", problem("mobile=910000000000&code=WELCOME20").item_status.code)
  end)
end)

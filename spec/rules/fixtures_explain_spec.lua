local rules = require("loyalty.rules")
local H = require("rules.helper")

describe("fixtures and explain", function()
  teardown(H.cleanup)

  it("the example rule set passes its own fixtures", function()
    local rs = assert(rules.load("examples/rules"))
    local res = rs:run_fixtures()
    assert.equal(6, res.passed)
    assert.equal(0, res.failed)
    assert.equal(rs.hash, res.hash)
  end)

  it("detects a wrong expectation and shows a readable diff", function()
    local dir = H.copy_examples()
    local path = dir .. "/fixtures/gold_mixed_cart.lua"
    H.write(path, (H.read(path):gsub("points = 1290", "points = 1291"):gsub("max = 3400, points = 3400",
      "max = 3450, points = 3400")))
    local res = assert(rules.load(dir)):run_fixtures()
    assert.same({ 5, 1 }, { res.passed, res.failed })
    local failed
    for _, r in ipairs(res.results) do if not r.ok then failed = r end end
    assert.equal("GOLD member, mixed cart, most points redeemable", failed.name)
    assert.same({
      "points: expected 1291, got 1290",
      "redemption max: expected 3450, got 3400",
      "  (the rules said: Allowed: up to 3400 points can be used on this order (limited by the customer's balance).)",
    }, failed.diff)
  end)

  it("reports a fixture that is not data", function()
    local dir = H.copy_examples()
    H.write(dir .. "/fixtures/broken.lua", "return { cart = { lines = {} }, expect = { points = os } }\n")
    local res = assert(rules.load(dir)):run_fixtures()
    assert.equal(1, res.failed)
    local r = res.results[1]
    assert.equal("broken.lua", r.name)
    assert.equal("could not read the fixture: unknown name 'os' in broken.lua line 1", r.diff[1])
  end)

  it("explains the sample cart line by line", function()
    local rs = assert(rules.load("examples/rules"))
    local cart = {
      currency = "INR",
      lines = {
        { sku = "PHONE-X12-128", qty = 1, price = 24999, discount = 999, categories = { "mobiles", "electronics" } },
        { sku = "SK-TSHIRT-M", qty = 2, price = 499, categories = { "fashion" } },
        { sku = "BAG-PAPER", qty = 1, price = 10 },
      },
      shipping = 49,
    }
    local text = rs:explain({ tier = "GOLD", points = 3400 }, cart, 730)
    local wanted = {
      "Rule set " .. rs.hash .. " (program.lua, earn.lua, redemption.lua, categories.lua)",
      "Earn rate: 1 point for every 100 INR; rounding: floor, per line",
      "Line 1  PHONE-X12-128  1 x 24999.00 = 24999.00, discount 999.00 -> base 24000.00  [mobiles, electronics]",
      "  rule: SKU PHONE-X12-128 x4, tier GOLD x1.25",
      "  24000.00 / 100 x 1 x 4 x 1.25 = 1200 -> floor -> 1200 points",
      "  rule: category fashion x3, tier GOLD x1.25, bonus x2 (own label, double points for GOLD)",
      "  998.00 / 100 x 1 x 3 x 1.25 x 2 = 74.85 -> floor -> 74 points",
      "  excluded: SKU BAG-PAPER is excluded from earning -> 0 points",
      "  excluded: shipping is excluded from earning -> 0 points",
      "Merchandise subtotal 25008.00; minimum order 499.00: met",
      "Cap per order 2500 points: not reached",
      "Points earned: 1274",
      "  limit: 50% of the order total = 50114 points (25057.00 x 0.5 / 0.25)",
      "  maximum for this order: 3400 points (limited by the customer's balance)",
      "  Verdict: Not allowed: 730 is not a multiple of 50.",
    }
    local have = {}
    for line in text:gmatch("[^\n]*") do have[line] = true end
    for _, w in ipairs(wanted) do assert.is_true(have[w] == true, "missing line: " .. w .. "\n" .. text) end
  end)

  it("explains a capped order", function()
    local rs = assert(rules.load("examples/rules"))
    local text = rs:explain({ tier = "PLATINUM", points = 0 },
      { currency = "INR",
        lines = { { sku = "LAPTOP-PRO-14", qty = 1, price = 149990, categories = { "electronics" } } } })
    assert.truthy(text:find("\nCap per order 2500 points: applied, 4499 -> 2500\n", 1, true), text)
    assert.truthy(text:find("Verdict: Not allowed: the customer has 0 points; at least 200 are needed to redeem.", 1,
      true), text)
  end)
end)

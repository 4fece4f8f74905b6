local rules = require("loyalty.rules")
local hash = require("loyalty.rules.hash")
local H = require("rules.helper")

local function load_with(files)
  files["program.lua"] = files["program.lua"] or H.PROGRAM
  return rules.load(H.dir(files))
end

local EARN = "points_earned = 1\nfor_every = 100\n"
local function cart(lines, extra)
  local c = { currency = "INR", lines = lines }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

describe("rules engine", function()
  teardown(H.cleanup)

  describe("earn", function()
    it("applies SKU over category multipliers and the highest category multiplier, then the tier", function()
      local rs = assert(load_with({ ["earn.lua"] = EARN ..
        'category_multipliers = { a = 2, b = 3, c = 0.5 }\nsku_multipliers = { S = 5 }\n' ..
        'tier_multipliers = { GOLD = 1.5 }\n' }))
      local res = assert(rs:earn({ tier = "GOLD" }, cart({
        { sku = "S", price = 1000, categories = { "a" } },      -- 10 x 5 x 1.5 = 75
        { sku = "T", price = 1000, categories = { "a", "b" } }, -- 10 x 3 x 1.5 = 45
        { sku = "U", price = 1000, categories = { "c" } },      -- 10 x 0.5 x 1.5 = 7.5 -> 7
        { sku = "V", price = 1000 },                            -- 10 x 1 x 1.5 = 15
      })))
      local l = res.lines
      assert.same({ 75, 45, 7, 15 }, { l[1].points, l[2].points, l[3].points, l[4].points })
      assert.same({ "SKU S", "category b", "category c", "base rate" },
        { res.lines[1].rule, res.lines[2].rule, res.lines[3].rule, res.lines[4].rule })
      assert.equal(142, res.points)
      assert.equal(rs.hash, res.hash)
    end)

    it("excludes SKUs, categories, shipping and tax unless told otherwise", function()
      local rs = assert(load_with({ ["earn.lua"] = EARN ..
        'exclude_skus = { "X" }\nexclude_categories = { "gift" }\nexclude_tax = false\n' }))
      local res = assert(rs:earn({}, cart({
        { sku = "X", price = 1000 }, { sku = "G", price = 1000, categories = { "gift" } }, { sku = "K", price = 1000 },
      }, { shipping = 500, tax = 300 })))
      assert.equal("SKU X is excluded from earning", res.lines[1].excluded)
      assert.equal("category gift is excluded from earning", res.lines[2].excluded)
      assert.equal("shipping is excluded from earning", res.lines[4].excluded)
      assert.equal("(tax)", res.lines[5].sku)
      assert.equal(3, res.lines[5].points)
      assert.equal(13, res.points)
    end)

    it("uses amount minus discount as the base", function()
      local rs = assert(load_with({ ["earn.lua"] = EARN }))
      local res = assert(rs:earn({}, cart({ { sku = "A", qty = 3, price = 999, amount = 2997, discount = 497 } })))
      assert.equal(2500, res.lines[1].base)
      assert.equal(25, res.points)
    end)

    it("honours the minimum order and the cap", function()
      local rs = assert(load_with({ ["earn.lua"] = EARN .. "minimum_order = 500\ncap_per_order = 30\n" }))
      local small = assert(rs:earn({}, cart({ { sku = "A", price = 499 } })))
      assert.equal(0, small.points)
      assert.is_true(small.below_minimum)
      local big = assert(rs:earn({}, cart({ { sku = "A", price = 5000 } })))
      assert.same({ 30, 50, true }, { big.points, big.before_cap, big.capped })
    end)

    it("rounds per line or once per order, by the declared policy, without float residue", function()
      local function points(rounding, per)
        local rs = assert(load_with({
          ["program.lua"] = 'currency = "INR"\nrounding = "' .. rounding .. '"\nround_per = "' .. per .. '"\n',
          ["earn.lua"] = "points_earned = 100\nfor_every = 1\n" }))
        -- 0.29 x 100 is 28.999999999999996 in floating point; the rules must still say 29
        local residue = assert(rs:earn({}, cart({ { sku = "D", price = 0.29 } }))).points
        -- lines worth 150.5, 150.5 and 25.5 points
        local total = assert(rs:earn({}, cart({ { sku = "A", price = 1.505 }, { sku = "B", price = 1.505 },
          { sku = "C", price = 0.255 } }))).points
        return { total, residue }
      end
      assert.same({ 325, 29 }, points("floor", "line"))
      assert.same({ 328, 29 }, points("round", "line"))   -- 151 + 151 + 26
      assert.same({ 328, 29 }, points("ceil", "line"))
      assert.same({ 326, 29 }, points("floor", "order"))  -- 326.5 once
      assert.same({ 327, 29 }, points("ceil", "order"))
      assert.same({ 327, 29 }, points("round", "order"))
    end)

    it("refuses a cart in another currency", function()
      local rs = assert(load_with({ ["earn.lua"] = EARN }))
      local res, err = rs:earn({}, { currency = "USD", lines = {} })
      assert.is_nil(res)
      assert.equal("the cart is in USD but these rules are written for INR", err.message)
    end)

    it("reports a malformed cart line in words", function()
      local rs = assert(load_with({ ["earn.lua"] = EARN }))
      local _, err = rs:earn({}, cart({ { sku = "A" } }))
      assert.equal("cart line 1 has neither a price nor an amount", err.message)
    end)
  end)

  describe("redemption", function()
    local RED = "point_value = 0.5\nmin_points = 100\nmax_points = 1000\nmultiple_of = 10\nmax_share = 0.5\n" ..
      "tiers = { VIP = { max_points = 2000, max_share = 1, min_points = 10 } }\n"

    it("takes the tightest of balance, per-order maximum and share of the order", function()
      local rs = assert(load_with({ ["redemption.lua"] = RED }))
      local c = cart({ { sku = "A", price = 1000 } })
      local r = assert(rs:redemption({ points = 5000 }, c))
      assert.same({ true, 100, 1000, 1000, 500 }, { r.allowed, r.min, r.max, r.points, r.value })
      assert.equal("the per-order maximum", r.limited_by)
      r = assert(rs:redemption({ points = 5000 }, cart({ { sku = "A", price = 1005 } }, { total = 1005 })))
      assert.same({ 1000, "the per-order maximum" }, { r.max, r.limited_by })
      r = assert(rs:redemption({ points = 5000 }, cart({ { sku = "A", price = 333 } })))
      assert.same({ 330, "50% of the order total" }, { r.max, r.limited_by })  -- 333 in multiples of 10
      r = assert(rs:redemption({ points = 457 }, c))
      assert.same({ 450, "the customer's balance" }, { r.max, r.limited_by })
      assert.equal(rs.hash, r.hash)
    end)

    it("applies tier overrides", function()
      local rs = assert(load_with({ ["redemption.lua"] = RED }))
      local r = assert(rs:redemption({ tier = "VIP", points = 5000 }, cart({ { sku = "A", price = 1500 } })))
      -- max_share 1 allows 3000 points; the VIP per-order maximum of 2000 is tighter
      assert.same({ 10, 2000, "the per-order maximum for VIP" }, { r.min, r.max, r.limited_by })
    end)

    it("checks a requested amount and says why in words", function()
      local rs = assert(load_with({ ["redemption.lua"] = RED }))
      local c = cart({ { sku = "A", price = 1000 } })
      local r = assert(rs:redemption({ points = 5000 }, c, 55))
      assert.same({ false, 0, "Not allowed: 55 points is below the minimum of 100." },
        { r.allowed, r.points, r.reason })
      r = assert(rs:redemption({ points = 5000 }, c, 1010))
      assert.equal("Not allowed: 1010 points is above the maximum of 1000 for this order " ..
        "(limited by the per-order maximum).",
        r.reason)
      r = assert(rs:redemption({ points = 5000 }, c, 155))
      assert.equal("Not allowed: 155 is not a multiple of 10.", r.reason)
      r = assert(rs:redemption({ points = 5000 }, c, 150))
      assert.same({ true, 150, 75 }, { r.allowed, r.points, r.value })
      r = assert(rs:redemption({ points = 50 }, c))
      assert.equal("Not allowed: the customer has 50 points; at least 100 are needed to redeem.", r.reason)
    end)

    it("works without a cart (balance summary): no share-of-order limit", function()
      local rs = assert(load_with({ ["redemption.lua"] = RED }))
      local r = assert(rs:redemption({ points = 700 }))
      assert.same({ true, 700, "the customer's balance" }, { r.allowed, r.max, r.limited_by })
    end)

    it("lets a refuse function veto with its reason", function()
      local rs = assert(load_with({ ["redemption.lua"] = RED ..
        "function refuse(customer, cart) if #cart.lines > 1 then return 'one item per redemption' end end\n" }))
      local two = cart({ { sku = "A", price = 1000 }, { sku = "B", price = 1 } })
      local r = assert(rs:redemption({ points = 5000 }, two))
      assert.same({ false, "Not allowed: one item per redemption." }, { r.allowed, r.reason })
    end)
  end)

  describe("line attributes", function()
    local CATS = 'attributes = { a = { x = "a", y = "a" }, b = { x = "b", z = 1 }, c = { w = true } }\n' ..
      'sku_attributes = { S = { y = "sku" } }\nprecedence = { "b", "a" }\n'
    it("merges categories by precedence, SKU attributes win, sorted by name", function()
      local rs = assert(load_with({ ["categories.lua"] = CATS }))
      assert.same({ { name = "w", value = true }, { name = "x", value = "b" }, { name = "y", value = "sku" },
        { name = "z", value = 1 } }, rs:line_attributes({ sku = "S", categories = { "c", "a", "b" } }))
      assert.same({ { name = "x", value = "a" }, { name = "y", value = "a" } },
        rs:line_attributes({ sku = "T", category = "a" }))
      assert.same({}, rs:line_attributes({ sku = "T", categories = { "unmapped" } }))
    end)
  end)

  describe("loading", function()
    it("reports a misspelled setting with its line and a suggestion", function()
      local rs, err = load_with({ ["redemption.lua"] = "point_value = 0.25\nmax_pionts = 5000\n" })
      assert.is_nil(rs)
      assert.equal("unknown setting 'max_pionts' in redemption.lua line 2 (did you mean 'max_points'?)", err.message)
      assert.same({ "rules", "redemption.lua", 2 }, { err.kind, err.file, err.line })
      assert.is_true(require("loyalty.errors").is_error(err))
      assert.equal("loyalty: rules error: " .. err.message, tostring(err))
    end)

    it("reports a setting in the wrong file, a wrong value, a missing requirement; skips a misnamed file", function()
      local report, rs = rules.check(H.dir({ ["program.lua"] = H.PROGRAM,
        ["earn.lua"] = 'points_earned = 1\nmax_points = 3\nminimum_order = "500"\n', ["redemtion.lua"] = "x = 1\n" }))
      assert.is_nil(rs)
      local messages = {}
      for _, e in ipairs(report.errors) do messages[#messages + 1] = e.message end
      assert.same({ "'redemtion.lua' is not a rule file name, so it was skipped (did you mean 'redemption.lua'?); " ..
        "rule files are program.lua, earn.lua, redemption.lua and categories.lua in redemtion.lua" },
        { report.warnings[1].message })
      assert.same({
        "the setting 'max_points' belongs in redemption.lua but was found in earn.lua line 2",
        "'minimum_order' should be a number, 0 or more, not the text \"500\" in earn.lua line 3",
        "earn.lua does not set 'for_every', which it needs (a number above 0) in earn.lua",
      }, messages)
    end)

    it("reports categories unknown to the catalog as warnings", function()
      local report, rs = rules.check(H.dir({ ["program.lua"] = H.PROGRAM,
        ["earn.lua"] = EARN .. 'exclude_categories = { "gift-cards" }\ncategory_multipliers = { electroncis = 2 }\n' }),
        { categories = { "electronics", "gift-cards" } })
      assert.truthy(rs)
      assert.equal(1, #report.warnings)
      assert.equal("unknown category 'electroncis' (in category_multipliers): it is not in the store's category " ..
        "list in earn.lua line 4 (did you mean 'electronics'?)", report.warnings[1].message)
    end)

    it("gives the same hash for the same files anywhere, a different one after an edit", function()
      local files = { ["program.lua"] = H.PROGRAM, ["earn.lua"] = EARN }
      local a, b = assert(rules.load(H.dir(files))), assert(rules.load(H.dir(files)))
      assert.equal(a.hash, b.hash)
      assert.matches("^%x+$", a.hash)
      assert.equal(16, #a.hash)
      files["earn.lua"] = EARN .. "-- edited\n"
      assert.not_equal(a.hash, assert(rules.load(H.dir(files))).hash)
    end)

    it("hashes with FNV-1a (first half checked against the reference algorithm)", function()
      assert.equal("cc1f564e92c77438", hash.hex({ "a", "bc" }))
      assert.equal("811c9dc5deadbeef", hash.hex({}))
    end)

    it("rejects unknown options as a programmer error", function()
      assert.has_error(function() rules.load("x", { instruction_limt = 5 }) end)
    end)
  end)
end)

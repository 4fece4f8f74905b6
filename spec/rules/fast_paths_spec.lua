-- The shortcuts the evaluation takes for speed give the same answers as the general paths.
local rules = require("loyalty.rules")
local H = require("rules.helper")

local function load_with(files)
  files["program.lua"] = files["program.lua"] or H.PROGRAM
  return rules.load(H.dir(files))
end

local EARN = "points_earned = 1\nfor_every = 100\n" ..
  'category_multipliers = { a = 2, b = 3, c = 0.5 }\nexclude_categories = { "x" }\n'

describe("rules fast paths", function()
  teardown(H.cleanup)

  it("classifies lines with none, one, two and more categories alike", function()
    local rs = assert(load_with({ ["earn.lua"] = EARN }))
    local res = assert(rs:earn({}, { currency = "INR", lines = {
      { sku = "A", price = 1000 },                                   -- 10 x 1
      { sku = "B", price = 1000, categories = "c" },                 -- 10 x 0.5 = 5
      { sku = "C", price = 1000, categories = { "c", "d" } },        -- 10 x 0.5 = 5
      { sku = "D", price = 1000, categories = { "b", "a" } },        -- 10 x 3 = 30
      { sku = "E", price = 1000, categories = { "d", "a", "b" } },   -- 10 x 3 = 30
      { sku = "F", price = 1000, categories = { "a", "x" } },        -- excluded by the second
      { sku = "G", price = 1000, categories = { "a", "b", "x" } },   -- excluded by the third
      { sku = "H", price = 1000, categories = { 7, "a" } },          -- names as text: 10 x 2 = 20
    } }))
    local points, rule = {}, {}
    for i, l in ipairs(res.lines) do points[i], rule[i] = l.points, l.excluded or l.rule end
    assert.same({ 10, 5, 5, 30, 30, 0, 0, 20 }, points)
    assert.same({ "base rate", "category c", "category c", "category b", "category b",
      "category x is excluded from earning", "category x is excluded from earning", "category a" }, rule)
    assert.same({ "7", "a" }, res.lines[8].categories)
  end)

  it("names tier limits only for tiers that override them", function()
    local rs = assert(load_with({ ["redemption.lua"] = "point_value = 1\nmax_points = 100\nmax_share = 0.5\n" ..
      "multiple_of = 7\ntiers = { GOLD = { max_points = 50 } }\n" }))
    local cart = { currency = "INR", lines = { { sku = "A", price = 1000 } } }
    local gold = assert(rs:redemption({ tier = "GOLD", points = 1000 }, cart))
    assert.equal("the per-order maximum for GOLD", gold.limited_by)
    assert.equal(49, gold.max)
    local silver = assert(rs:redemption({ tier = "SILVER", points = 1000 }, cart))
    assert.equal("the per-order maximum", silver.limited_by)
    assert.equal("whole multiples of 7", silver.limits[#silver.limits].name)
    assert.equal(98, silver.max)
  end)

  it("leaves an outer hook and the string metatable alone, with or without rule functions", function()
    local with_bonus = assert(load_with({ ["earn.lua"] = EARN .. "function bonus() return 2 end\n" }))
    local data_only = assert(load_with({ ["earn.lua"] = EARN }))
    local calls = 0
    local function outer() calls = calls + 1 end
    local string_index = getmetatable("").__index
    local cart = { currency = "INR", lines = { { sku = "A", price = 1000 } } }
    for _, rs in ipairs({ data_only, with_bonus }) do
      debug.sethook(outer, "", 1000000)
      local res = assert(rs:earn({}, cart))
      local hook, mask, count = debug.gethook()
      debug.sethook()
      assert.equal(outer, hook)
      assert.equal("", mask)
      assert.equal(1000000, count)
      assert.equal(string_index, getmetatable("").__index)
      assert.equal(rs == with_bonus and 20 or 10, res.points)
    end
  end)
end)

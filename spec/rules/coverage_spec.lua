-- Coverage in `rules test` (issue 20): what each fixture exercised, and what no fixture tests.
local H = require("rules.helper")
local rules = require("loyalty.rules")
local coverage = require("loyalty.rules.coverage")

local function run(args)
  local out = os.tmpname()
  local vm = type(rawget(_G, "jit")) == "table" and "luajit" or "lua5.4"
  local a, _, c = os.execute(vm .. " ./bin/loyalty " .. args .. " >" .. out .. " 2>&1")
  local text = H.read(out)
  os.remove(out)
  return type(a) == "number" and a / 256 or c, text
end

local function untested_words(dir)
  local rs = assert(rules.load(dir))
  local cov = coverage.report(rs, rs:run_fixtures())
  local set = {}
  for _, en in ipairs(cov.untested) do set[en.words] = en end
  assert.equal(#cov.entries, cov.tested + #cov.untested)
  return set, cov
end

local PLATINUM_SHARE = [[
-- 2000 total x 0.8 (PLATINUM) / 0.25 = 6400 points, below PLATINUM's 10000 and the 20000 balance
return {
  name = "PLATINUM share limit",
  customer = { tier = "PLATINUM", points = 20000 },
  cart = { currency = "INR", lines = { { sku = "HDMI-2M", qty = 1, price = 2000, categories = { "electronics" } } } },
  expect = { redemption = { allowed = true, max = 6400 } },
}
]]

describe("rules test coverage", function()
  teardown(H.cleanup)

  it("prints per fixture what it exercised and at the end what no fixture tests, with file and line", function()
    local code, text = run("rules test examples/rules")
    assert.equal(0, code, text)
    assert.truthy(text:find("PASS 730 points requested, only multiples of 50 allowed  (not_a_multiple.lua)\n" ..
      "     exercised: the earn rate (points_earned per for_every), category electronics x2, tier SILVER " ..
      "multiplier x1, multiple_of\n", 1, true), text)
    assert.truthy(text:find("tier PLATINUM max_share is never tested (redemption.lua line 12)", 1, true), text)
    assert.truthy(text:find("coverage: %d+ of %d+ rule entries are exercised by a fixture"), text)
  end)

  it("counts an entry once a fixture checks a result it decided, and never takes coverage away", function()
    local before = untested_words("examples/rules")
    assert.truthy(before["tier PLATINUM max_share"])
    local dir = H.copy_examples()
    H.write(dir .. "/fixtures/platinum_share.lua", PLATINUM_SHARE)
    local after = untested_words(dir)
    assert.is_nil(after["tier PLATINUM max_share"])
    for words in pairs(after) do assert.truthy(before[words], words .. " became untested") end
  end)

  it("does not count earn rules for a fixture that does not check points, or where the cap decided", function()
    local dir = H.dir({ ["program.lua"] = H.PROGRAM,
      ["earn.lua"] = "points_earned = 1\nfor_every = 100\ncap_per_order = 5\ncategory_multipliers = { a = 2 }\n",
      ["fixtures/bare.lua"] = "return { cart = { lines = { { sku = 'S', price = 100, categories = { 'a' } } } }," ..
        " expect = { attributes = {} } }",
      ["fixtures/capped.lua"] = "return { cart = { lines = { { sku = 'S', price = 1000, categories = { 'a' } } } }," ..
        " expect = { points = 5 } }",
    })
    local untested, cov = untested_words(dir)
    assert.truthy(untested["category a x2"])
    assert.is_nil(untested["cap_per_order (an order above it)"])
    assert.truthy(untested["the earn rate (points_earned per for_every)"])
    assert.equal(3, #cov.entries)
  end)
end)

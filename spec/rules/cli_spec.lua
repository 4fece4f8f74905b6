local H = require("rules.helper")

local function interpreter()
  return type(rawget(_G, "jit")) == "table" and "luajit" or "lua5.4"
end

-- Runs bin/loyalty with the current VM; returns exit code and output.
local function run(args)
  local out = os.tmpname()
  local cmd = interpreter() .. " ./bin/loyalty " .. args .. " >" .. out .. " 2>&1"
  local a, _, c = os.execute(cmd)
  local code = type(a) == "number" and a / 256 or c  -- Lua 5.1 returns the raw status
  local text = H.read(out)
  os.remove(out)
  return code, text
end

describe("loyalty rules CLI", function()
  teardown(H.cleanup)

  it("test passes on the examples and exits 0", function()
    local code, text = run("rules test examples/rules")
    assert.equal(0, code, text)
    assert.truthy(text:find("PASS GOLD member, mixed cart, most points redeemable", 1, true), text)
    assert.truthy(text:find("6 passed, 0 failed", 1, true), text)
  end)

  it("test exits 1 with a diff when a fixture fails", function()
    local dir = H.copy_examples()
    H.write(dir .. "/earn.lua", (H.read(dir .. "/earn.lua"):gsub("cap_per_order = 2500", "cap_per_order = 2000")))
    local code, text = run("rules test " .. dir)
    assert.equal(1, code, text)
    assert.truthy(text:find("FAIL PLATINUM member, large order, capped earn, 9000 points redeemed", 1, true), text)
    assert.truthy(text:find("points: expected 2500, got 2000", 1, true), text)
  end)

  it("check gives the verdict a running storefront gives: a failing fixture is an error, exit 1", function()
    local dir = H.copy_examples()
    H.write(dir .. "/earn.lua", (H.read(dir .. "/earn.lua"):gsub("cap_per_order = 2500", "cap_per_order = 2000")))
    local code, text = run("rules check " .. dir)
    assert.equal(1, code, text)
    assert.truthy(text:find("error: 1 fixture(s) failed", 1, true), text)
    assert.truthy(text:find("in fixtures/platinum_capped.lua", 1, true), text)
    assert.truthy(text:find("keep its last good rule set", 1, true), text)
  end)

  it("check reports a typo with file, line and suggestion, exit 1", function()
    local dir = H.copy_examples()
    local edited = H.read(dir .. "/redemption.lua"):gsub("max_points  = 5000", "max_pionts  = 5000")
    H.write(dir .. "/redemption.lua", edited)
    local code, text = run("rules check " .. dir)
    assert.equal(1, code, text)
    assert.truthy(text:find("error: unknown setting 'max_pionts' in redemption.lua line 5 (did you mean 'max_points'?)",
      1, true), text)
  end)

  it("check accepts the examples against the catalog, exit 0", function()
    local code, text = run("rules check examples/rules --categories examples/rules/catalog-categories.txt")
    assert.equal(0, code, text)
    assert.truthy(text:find("^ok: examples/rules is rule set %x+"), text)
  end)

  it("check reports a category missing from the catalog, exit 1", function()
    local list = H.dir() .. "/cats.txt"
    H.write(list, "electronics\nfashion\n")
    local code, text = run("rules check examples/rules --categories " .. list)
    assert.equal(1, code, text)
    assert.truthy(text:find("warning: unknown category 'groceries'", 1, true), text)
  end)

  it("explain prints the trace and the verdict", function()
    local code, text = run("rules explain examples/rules examples/rules/sample-cart.json")
    assert.equal(0, code, text)
    assert.truthy(text:find("Points earned: 1290", 1, true), text)
    assert.truthy(text:find("Verdict: Allowed: 1000 points (between 200 and 3400).", 1, true), text)
    code, text = run("rules explain examples/rules examples/rules/sample-cart.json --tier SILVER --points 100")
    assert.equal(0, code, text)
    assert.truthy(text:find("at least 200 are needed", 1, true), text)
  end)

  it("each command has --help and usage errors exit 2", function()
    for _, c in ipairs({ "check", "test", "explain" }) do
      local code, text = run("rules " .. c .. " --help")
      assert.equal(0, code, text)
      assert.truthy(text:find("Usage: loyalty rules " .. c, 1, true), text)
    end
    assert.equal(2, (run("rules")))
    assert.equal(2, (run("rules frobnicate")))
    assert.equal(2, (run("rules explain examples/rules")))
    assert.equal(2, (run("rules check examples/rules --nope 1")))
  end)
end)

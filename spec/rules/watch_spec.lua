local rules = require("loyalty.rules")
local H = require("rules.helper")

describe("rules.watch", function()
  teardown(H.cleanup)

  local dir, now, watcher
  before_each(function()
    dir = H.copy_examples()
    now = 0
    watcher = rules.watch(dir, { check_interval_ms = 1000, clock = function() return now end })
  end)

  local function edit(file, from, to)
    local path = dir .. "/" .. file
    local text = H.read(path)
    local replaced, n = text:gsub(from, to)
    assert.equal(1, n, "pattern not found in " .. file)
    H.write(path, replaced)
  end

  it("serves the rule set and picks up a good edit after the interval", function()
    local first = assert(watcher:current())
    edit("earn.lua", '{ "BAG%-PAPER" }', '{ "BAG-PAPER", "BAG-CLOTH" }')
    assert.equal(first, watcher:current())      -- not checked again before the interval
    now = 1000
    local second = assert(watcher:current())
    assert.not_equal(first.hash, second.hash)
    assert.is_nil(watcher:last_error())
  end)

  it("keeps serving the last good rules after a bad edit, and says why", function()
    local good = assert(watcher:current())
    edit("redemption.lua", "max_points  = 5000", "max_points  = = 5000")
    now = 1000
    assert.equal(good, watcher:current())
    local err = watcher:last_error()
    assert.same({ "rules", "redemption.lua", 5 }, { err.kind, err.file, err.line })
    -- the running rules still answer
    local r = assert(watcher:current():redemption({ tier = "SILVER", points = 800 }, nil))
    assert.equal(800, r.max)
    -- fixing the file takes effect
    edit("redemption.lua", "max_points  = = 5000", "max_points  = 5000")
    now = 2000
    assert.equal(good.hash, watcher:current().hash)
    assert.is_nil(watcher:last_error())
  end)

  it("keeps the last good rules when an edit fails the fixtures", function()
    local good = assert(watcher:current())
    edit("earn.lua", "points_earned = 1\n", "points_earned = 2\n")
    now = 1000
    assert.equal(good, watcher:current())
    local err = watcher:last_error()
    assert.truthy(err.message:find("fixture(s) failed", 1, true), err.message)
    assert.truthy(err.message:find("points: expected", 1, true), err.message)
  end)

  it("keeps the last good rules when an edit never finishes", function()
    local good = assert(watcher:current())
    edit("program.lua", 'round_per = "line"', 'round_per = "line"\nwhile true do end')
    now = 1000
    assert.equal(good, watcher:current())
    assert.truthy(watcher:last_error().message:find("steps", 1, true))
  end)

  it("reports an error when there was never a good version", function()
    local empty = H.dir({ ["program.lua"] = "currency = INR\n" })
    local w = rules.watch(empty, { clock = function() return 0 end })
    local rs, err = w:current()
    assert.is_nil(rs)
    assert.equal("unknown name 'INR' in program.lua line 1", err.message)
  end)
end)

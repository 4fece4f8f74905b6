-- luacheck: ignore 122 (io.popen, os.execute and io.open are instrumented below)
-- The watcher's last good rule set on disk, its events, and what a check costs (no process
-- started, no file opened when nothing changed).
local rules = require("loyalty.rules")
local files = require("loyalty.rules.files")
local H = require("rules.helper")

describe("rules.watch with last_good", function()
  teardown(H.cleanup)

  local dir, store, now, events
  local function sink(level, event, fields) events[#events + 1] = { level = level, event = event, fields = fields } end
  local function watch(d)
    return rules.watch(d or dir, { check_interval_ms = 1000, clock = function() return now end, last_good = store,
                                   log = sink })
  end
  local function named(event)
    local out = {}
    for _, e in ipairs(events) do if e.event == event then out[#out + 1] = e end end
    return out
  end
  local function edit(file, from, to)
    local path = dir .. "/" .. file
    local text, n = H.read(path):gsub(from, to)
    assert.equal(1, n, "pattern not found in " .. file)
    H.write(path, text)
  end

  before_each(function()
    dir = H.copy_examples()
    store = H.dir() .. "/state/rules" -- parents made on demand
    now, events = 0, {}
  end)

  it("saves each accepted version, exactly as loaded, and points at it", function()
    local w = watch()
    local rs = assert(w:current())
    local pointer = H.read(store .. "/current")
    assert.equal("rules-" .. rs.hash .. "\n" .. dir .. "\n", pointer)
    for _, f in ipairs(rs.files) do
      assert.equal(H.read(dir .. "/" .. f), H.read(store .. "/rules-" .. rs.hash .. "/" .. f))
    end
    for _, f in ipairs(files.list(dir .. "/fixtures", { ".lua", ".json" })) do
      assert.equal(H.read(dir .. "/fixtures/" .. f), H.read(store .. "/rules-" .. rs.hash .. "/fixtures/" .. f))
    end
    local loaded = named("rules_loaded")
    assert.equal(1, #loaded)
    assert.equal(rs.hash, loaded[1].fields.hash)
    -- nothing half-written is left behind
    for name in files.lfs.dir(store) do assert.is_nil(name:match("tmp"), name) end
  end)

  it("starts from the saved version when the files on disk fail, and says why once", function()
    local good = assert(watch():current())
    edit("redemption.lua", "max_points  = 5000", "max_points  = 'lots'")
    events = {}
    local w = watch()
    local rs = assert(w:current())
    assert.equal(good.hash, rs.hash)
    local rejected = named("rules_rejected")
    assert.equal(1, #rejected)
    assert.equal("error", rejected[1].level)
    assert.equal("redemption.lua", rejected[1].fields.file)
    assert.equal(5, rejected[1].fields.line)
    assert.matches("max_points", rejected[1].fields.reason)
    assert.equal(1, #named("rules_last_good"))
    -- later checks without a change log nothing more
    for _ = 1, 5 do
      now = now + 1000
      w:current()
    end
    assert.equal(1, #named("rules_rejected"))
    -- a fix is taken and saved
    edit("redemption.lua", "max_points  = 'lots'", "max_points  = 6000")
    now = now + 1000
    local fixed = assert(w:current())
    assert.not_equal(good.hash, fixed.hash)
    assert.equal("rules-" .. fixed.hash, H.read(store .. "/current"):match("^(%S+)"))
  end)

  it("keeps the saved version in force when an edit fails its fixtures", function()
    local w = watch()
    local good = assert(w:current())
    edit("earn.lua", "points_earned = 1\n", "points_earned = 2\n")
    now = now + 1000
    assert.equal(good, w:current())
    local rejected = named("rules_rejected")
    assert.equal(1, #rejected)
    assert.matches("fixture", rejected[1].fields.reason)
    assert.equal(good.hash, rejected[1].fields.kept)
    assert.equal("rules-" .. good.hash, H.read(store .. "/current"):match("^(%S+)"))
  end)

  it("takes a rejected edit once its fixtures are fixed", function()
    local w = watch()
    local good = assert(w:current())
    -- min_points 200 -> 100 makes "at least 200 are needed" in this fixture wrong
    edit("redemption.lua", "min_points  = 200", "min_points  = 100")
    now = now + 1000
    assert.equal(good, w:current())
    assert.equal(1, #named("rules_rejected"))
    edit("fixtures/silver_below_minimum.lua",
         'redemption = { allowed = false, points = 0, reason = "at least 200 are needed" },',
         'redemption = { allowed = true, points = 150 },')
    now = now + 1000
    assert.equal(good, w:current()) -- one fixture still disagrees
    edit("fixtures/gold_mixed_cart.lua", "min = 200,", "min = 100,")
    now = now + 1000
    local fixed = w:current()
    assert.not_equal(good.hash, fixed.hash, tostring(w:last_error()))
    assert.equal(100, fixed.settings["redemption.lua"].min_points)
  end)

  it("does not use another directory's saved rules", function()
    assert(watch():current())
    local other = H.dir { ["program.lua"] = "currency = 1\n" }
    local w = watch(other)
    assert.is_nil((w:current()))
    assert.equal(0, #named("rules_last_good"))
  end)

  it("keeps a few versions only", function()
    local w = watch()
    assert(w:current())
    for i = 1, 5 do
      edit("program.lua", "\n$", "\n-- edit " .. i .. "\n")
      now = now + 1000
      w:current()
    end
    local n = 0
    for name in files.lfs.dir(store) do if name:match("^rules%-") then n = n + 1 end end
    assert.is_true(n <= 3, n)
    assert.equal(w:current().hash, H.read(store .. "/current"):match("^rules%-(%x+)"))
  end)

  it("sees a same-size edit made within the same second", function()
    local w = watch()
    local before = H.read(dir .. "/earn.lua")
    edit("earn.lua", "points_earned = 1\n", "points_earned = 2\n")
    assert.equal(#before, #H.read(dir .. "/earn.lua"))
    now = now + 1000
    -- the fixtures reject it: the point is that the edit was seen at all
    w:current()
    assert.equal(1, #named("rules_rejected"))
  end)

  it("never starts a process, and opens no file when nothing changed", function()
    local w = watch()
    assert(w:current())
    local popen, execute, open = io.popen, os.execute, io.open
    local started, opened = 0, 0
    io.popen = function(...) started = started + 1 return popen(...) end
    os.execute = function(...) started = started + 1 return execute(...) end
    local ok, err = pcall(function()
      -- make the files older than the racy window, then check many times
      local old = os.time() - 10
      for _, p in ipairs(w.paths) do files.lfs.touch(p, old, old) end
      now = now + 1000
      w:current()
      io.open = function(...) opened = opened + 1 return open(...) end
      for _ = 1, 50 do
        now = now + 1000
        w:current()
      end
      io.open = open
      -- an edit, a reload and a save: still no process
      edit("redemption.lua", "max_points  = 5000", "max_points  = 7000")
      now = now + 1000
      w:current()
    end)
    io.popen, os.execute, io.open = popen, execute, open
    assert(ok, err)
    assert.equal(0, started)
    assert.equal(0, opened)
  end)
end)

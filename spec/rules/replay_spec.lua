-- `rules replay` (issue 20): logged orders evaluated under current and proposed rules, without any CRM.
local H = require("rules.helper")
local rules = require("loyalty.rules")
local replay = require("loyalty.rules.replay")
local order_log = require("loyalty.program.order_log")
local cjson = require("cjson")

local function run(args)
  local out = os.tmpname()
  local vm = type(rawget(_G, "jit")) == "table" and "luajit" or "lua5.4"
  local a, _, c = os.execute(vm .. " ./bin/loyalty " .. args .. " >" .. out .. " 2>&1")
  local text = H.read(out)
  os.remove(out)
  return type(a) == "number" and a / 256 or c, text
end

local CATALOG = {
  { sku = "PHONE-X12-128", price = 24999, categories = { "mobiles", "electronics" }, discount = 999 },
  { sku = "SK-TSHIRT-M", price = 499, categories = { "fashion" } },
  { sku = "RICE-5KG", price = 450, categories = { "groceries" } },
  { sku = "HDMI-2M", price = 599, categories = { "electronics" } },
  { sku = "BOOK-LUA", price = 799, categories = { "books" } },
  { sku = "BAG-PAPER", price = 10 },
}
local TIERS = { "SILVER", "gold", "PLATINUM", false }

-- A log of n orders estimated by `rs` (as the program writes it), with junk lines at known line numbers.
local function make_log(rs, n, junk)
  local log = order_log.open({ path = "unused" })
  local out, records, line = {}, {}, 0
  for i = 1, n do
    if junk and junk[line + 1] then
      line = line + 1
      out[line] = junk[line]
    end
    local lines = {}
    for j = 1, (i % 5) + 1 do
      local p = CATALOG[(i * 7 + j * 3) % #CATALOG + 1]
      local qty = (i + j) % 3 + 1
      lines[j] = { sku = p.sku, qty = qty, price = p.price, amount = p.price * qty, discount = p.discount,
        categories = p.categories }
    end
    local order = { id = "O-" .. i, lines = lines, shipping = 49 }
    local tier = TIERS[i % #TIERS + 1] or nil
    local est = rs:earn({ tier = tier }, order)
    local rec = log:record({ order = order, ident = { key = "mobile", value = "91" .. i }, tier = tier, rules = rs,
      estimate = est, result = { points_earned = est.points, point_value = (i % 2 == 0) and 0.25 or 0.2 } })
    line = line + 1
    out[line] = cjson.encode(rec)
    records[#records + 1] = rec
  end
  local path = H.dir() .. "/orders.jsonl"
  H.write(path, table.concat(out, "\n") .. "\n")
  return path, records
end

local function proposed()
  local dir = H.copy_examples()
  local text = H.read(dir .. "/earn.lua")
  text = text:gsub('%["electronics"%] = 2', '["electronics"] = 3'):gsub("cap_per_order = 2500", "cap_per_order = 2000")
  H.write(dir .. "/earn.lua", text)
  return dir
end

describe("rules replay", function()
  teardown(H.cleanup)
  local current = assert(rules.load("examples/rules"))

  it("finds nothing changed when the proposed rules are the current ones", function()
    local path = make_log(current, 40)
    local s = assert(replay.run({ new = current, old = current, orders = path }))
    assert.equal(40, s.orders)
    assert.equal(0, s.changed)
    assert.equal(s.points.old, s.points.new)
    assert.equal(s.liability.old, s.liability.new)
    assert.same({}, s.top)
    s = assert(replay.run({ new = current, orders = path }))  -- against the logged estimates
    assert.equal(0, s.changed)
  end)

  it("adds up: totals, tiers, categories and liability agree with evaluating every order by hand", function()
    local new = assert(rules.load(proposed()))
    local path, records = make_log(current, 60)
    local s = assert(replay.run({ new = new, old = current, orders = path }))
    local old_total, new_total, changed, liability = 0, 0, 0, 0
    for _, rec in ipairs(records) do
      local customer = { tier = rec.tier }
      local o, n = current:earn(customer, rec.cart).points, new:earn(customer, rec.cart).points
      old_total, new_total = old_total + o, new_total + n
      liability = liability + (n - o) * rec.point_value
      if o ~= n then changed = changed + 1 end
    end
    assert.equal(old_total, s.points.old)
    assert.equal(new_total, s.points.new)
    assert.is_true(changed > 0 and changed <= s.changed)
    assert.near(liability, s.liability.new - s.liability.old, 1e-6)
    local tiers, cats = 0, 0
    for _, r in pairs(s.by_tier) do tiers = tiers + r.new end
    for _, r in pairs(s.by_category) do cats = cats + r.new end
    assert.equal(new_total, tiers)
    assert.near(new_total, cats, 1e-6)
    assert.truthy(s.by_tier.GOLD, "logged tiers are compared in capitals")
    assert.is_true(#s.top <= 10)
    for i = 2, #s.top do assert.is_true(math.abs(s.top[i - 1].delta) >= math.abs(s.top[i].delta)) end
    -- the default comparison is the estimate logged when the order was placed
    local logged = assert(replay.run({ new = new, orders = path }))
    assert.equal(old_total, logged.points.old)
  end)

  it("reports truncated and foreign lines with their line numbers and skips them", function()
    local path = make_log(current, 10, { [3] = '{"v":1,"order_id":"O-x","cart":{"lin', [6] = "hello",
      [8] = '{"event":"login","user":"x"}', [11] = '{"v":7,"cart":{"lines":[]}}' })
    local s = assert(replay.run({ new = current, orders = path }))
    assert.equal(10, s.orders)
    local lines = {}
    for _, k in ipairs(s.skipped) do lines[#lines + 1] = k.line end
    assert.same({ 3, 6, 8, 11 }, lines)
    assert.truthy(s.skipped[1].why:find("truncated", 1, true))
  end)

  it("never raises on hostile records: wrong types, foreign shapes, deep nesting", function()
    local lines = {
      '{"v":1,"cart":{"lines":["x", 3, {"sku":{"a":1},"price":"abc"}]},"tier":5,"point_value":"x"}',
      '{"v":1,"cart":{"lines":{"a":1}},"estimate":"many","order_id":{"x":1}}',
      '{"v":1,"cart":{"lines":[{"price":100,"categories":[1,{"a":2},true]}],"currency":"USD"}}',
      '{"v":1,"cart":{"lines":[{"price":1e308,"qty":1e308}]},"tier":"gold","awarded":[1]}',
      string.rep("[", 5000) .. string.rep("]", 5000),
      '{"v":1,"cart":{"lines":[{"price":100}],"total":-5,"shipping":"free"},"rules_hash":null,"tier":null}',
    }
    local path = H.dir() .. "/hostile.jsonl"
    H.write(path, table.concat(lines, "\n") .. "\n")
    local new = assert(rules.load(proposed()))
    for _, old in ipairs({ current, false }) do
      local args = { new = new, old = old or nil, orders = path }
      local ok, s = pcall(replay.run, args)
      assert.is_true(ok, tostring(s))
      assert.equal(#lines, s.orders + #s.skipped)
      local ok_text, text = pcall(replay.text, s, args)
      assert.is_true(ok_text, tostring(text))
      local ok_drift, d = pcall(require("loyalty.rules.drift").run, { orders = path, rules = old or nil })
      assert.is_true(ok_drift, tostring(d))
      assert.is_true(pcall(require("loyalty.rules.drift").text, d, { orders = path, rules = old or nil }))
    end
  end)

  it("lists orders that now fail or trip a limit", function()
    local dir = proposed()
    H.write(dir .. "/earn.lua", H.read(dir .. "/earn.lua") ..
      '\nlocal function boom(line) if line.sku == "BOOK-LUA" then error("no books") end end\n' ..
      "local own = bonus\nfunction bonus(line, customer, cart) boom(line) return own(line, customer, cart) end\n")
    local new = assert(rules.load(dir))
    local path, records = make_log(current, 30)
    local s = assert(replay.run({ new = new, old = current, orders = path }))
    local books = 0
    for _, rec in ipairs(records) do
      for _, l in ipairs(rec.cart.lines) do if l.sku == "BOOK-LUA" then books = books + 1 break end end
    end
    assert.is_true(books > 0)
    assert.equal(books, #s.failing)
    assert.truthy(s.failing[1].error:find("no books", 1, true), s.failing[1].error)
    assert.is_true(#s.limits > 0)
    assert.truthy(s.limits[1].what:find("now capped at 2000", 1, true))
  end)

  it("prints the report from the command line, with the arithmetic of the orders that changed most", function()
    local path = make_log(current, 25, { [2] = "{truncated" })
    local code, text = run("rules replay " .. proposed() .. " --orders " .. path .. " --against examples/rules")
    assert.equal(0, code, text)
    assert.truthy(text:find("Orders changed: %d+ of 25"), text)
    assert.truthy(text:find("Points issued: %d+ %-> %d+"), text)
    assert.truthy(text:find("by tier:", 1, true), text)
    assert.truthy(text:find("at the CRM's point value", 1, true), text)
    assert.truthy(text:find("The %d+ orders that changed most:"), text)
    assert.truthy(text:find("x 2[%) x%d.]* = [%d.]+ %-> %d+  =>  category electronics %([%d.]+ / 100 x 1 x 3"), text)
    assert.truthy(text:find("line 2: not", 1, true), text)
  end)

  it("exits 2 when the log cannot be read, 1 when the rules do not load, 2 without --orders", function()
    local code, text = run("rules replay examples/rules --orders /nonexistent/orders.jsonl")
    assert.equal(2, code, text)
    assert.truthy(text:find("cannot read the order log", 1, true), text)
    code = run("rules replay /nonexistent/rules --orders /dev/null")
    assert.equal(1, code)
    code = run("rules replay examples/rules")
    assert.equal(2, code)
    local junk = H.dir() .. "/junk.jsonl"
    H.write(junk, "not json\n{\"a\":1}\n")
    code, text = run("rules replay examples/rules --orders " .. junk)
    assert.equal(1, code, text)
    assert.truthy(text:find("line 1: not", 1, true) and text:find("line 2: not an order record", 1, true), text)
  end)

  it("shows progress when asked", function()
    local path = make_log(current, 5)
    local written = {}
    local code = require("loyalty.cli.rules_replay").run({ dir = "examples/rules", orders = path, progress = true,
      out = function() end, err = function(s) written[#written + 1] = s end })
    assert.equal(0, code)
    assert.truthy(table.concat(written):find("100%% of the order log read"))
  end)
end)

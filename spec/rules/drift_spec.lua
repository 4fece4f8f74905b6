-- `rules drift` (issue 20): where the rules' estimate and the CRM's award differ, grouped so the rule shows.
local H = require("rules.helper")
local rules = require("loyalty.rules")
local drift = require("loyalty.rules.drift")
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

local PRODUCTS = {
  { sku = "HDMI-2M", price = 599, categories = { "electronics" } },
  { sku = "SK-TSHIRT-M", price = 499, categories = { "fashion" } },
  { sku = "RICE-5KG", price = 450, categories = { "groceries" } },
}

-- Orders estimated by the examples; the "CRM" pays half on any order holding electronics.
local function make_log(n, extra_lines)
  local rs = assert(rules.load("examples/rules"))
  local log = order_log.open({ path = "unused" })
  local out = {}
  for i = 1, n do
    local lines = {}
    for j = 1, (i % 3) + 1 do
      local p = PRODUCTS[(i + j) % #PRODUCTS + 1]
      lines[j] = { sku = p.sku, qty = 2, price = p.price, categories = p.categories }
    end
    local order = { id = "D-" .. i, lines = lines }
    local tier = ({ "SILVER", "GOLD" })[i % 2 + 1]
    local est = rs:earn({ tier = tier }, order)
    local has_electronics = false
    for _, l in ipairs(lines) do if l.sku == "HDMI-2M" then has_electronics = true end end
    local awarded = has_electronics and math.floor(est.points / 2) or est.points
    out[#out + 1] = cjson.encode(log:record({ order = order, tier = tier, rules = rs, estimate = est,
      result = { points_earned = awarded } }))
  end
  for _, l in ipairs(extra_lines or {}) do out[#out + 1] = l end
  local path = H.dir() .. "/orders.jsonl"
  H.write(path, table.concat(out, "\n") .. "\n")
  return path
end

describe("rules drift", function()
  teardown(H.cleanup)

  it("groups drifting orders so the rule that is off shows, and the groups add up", function()
    local path = make_log(30)
    local s = assert(drift.run({ orders = path }))
    assert.equal(30, s.compared)
    assert.is_true(s.drifting > 0)
    local e = s.by.category.electronics
    assert.equal(e.orders, e.drifting)  -- every electronics order drifts
    -- fashion drifts only when the order also holds electronics (some fashion orders hold nothing else)
    local fashion = s.by.category.fashion
    assert.is_true(fashion.drifting < fashion.orders)
    local orders, drifting, est, awarded = 0, 0, 0, 0
    for _, g in pairs(s.by.tier) do
      orders, drifting, est, awarded = orders + g.orders, drifting + g.drifting, est + g.estimate, awarded + g.awarded
    end
    assert.same({ s.compared, s.drifting, s.estimate, s.awarded }, { orders, drifting, est, awarded })
    orders = 0
    for _, g in pairs(s.by.size) do orders = orders + g.orders end
    assert.equal(s.compared, orders)
  end)

  it("leaves out queued orders and skips broken lines with their numbers", function()
    local path = make_log(4, { '{"v":1,"order_id":"Q-1","cart":{"lines":[]},"estimate":5}', "{half a rec" })
    local s = assert(drift.run({ orders = path }))
    assert.equal(5, s.orders)
    assert.equal(1, s.not_awarded)
    assert.same({ { line = 6, why = "not a whole JSON record (truncated?)" } }, s.skipped)
  end)

  it("re-estimates with a fixed rule set: the drift goes away", function()
    local path = make_log(12)
    local dir = H.copy_examples()
    -- the CRM pays electronics at the base rate: halve the multiplier (x2 -> x1) and the drift shrinks
    local text = H.read(dir .. "/earn.lua"):gsub('%["electronics"%] = 2', '["electronics"] = 1')
    H.write(dir .. "/earn.lua", text)
    local before = assert(drift.run({ orders = path }))
    local after = assert(drift.run({ orders = path, rules = assert(rules.load(dir)) }))
    assert.is_true(math.abs(after.awarded - after.estimate) < math.abs(before.awarded - before.estimate))
  end)

  it("prints the groups and exits 1 when anything drifts, 0 when nothing does", function()
    local code, text = run("rules drift --orders " .. make_log(20))
    assert.equal(1, code, text)
    assert.truthy(text:find("by category:\n    electronics", 1, true), text)
    assert.truthy(text:find("by tier:", 1, true), text)
    assert.truthy(text:find("by SKU:\n    HDMI-2M", 1, true), text)
    assert.truthy(text:find("by cart size:", 1, true), text)
    local path = H.dir() .. "/same.jsonl"
    local rs = assert(rules.load("examples/rules"))
    local order = { id = "S-1", lines = { { sku = "RICE-5KG", qty = 2, price = 450, categories = { "groceries" } } } }
    local est = rs:earn({}, order)
    H.write(path, cjson.encode(order_log.open({ path = path }):record({ order = order, rules = rs, estimate = est,
      result = { points_earned = est.points } })) .. "\n")
    code, text = run("rules drift --orders " .. path)
    assert.equal(0, code, text)
    code = run("rules drift --orders /nonexistent.jsonl")
    assert.equal(2, code)
  end)
end)

describe("rules drift on the program's own log", function()
  local support = require "support.sandbox"
  local sb

  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end H.cleanup() end)

  it("shows where the sandbox CRM's award and the rules' estimate disagree", function()
    local path = H.dir() .. "/orders.jsonl"
    local p = assert(require("loyalty").program({
      crm = { base_url = sb.url, username = "store.server", password = "server123", sleep = function() end },
      rules = "examples/rules", order_log = { path = path } }))
    local user = { mobile = "919999000001", tier = "GOLD" }
    local posted = {}
    for i = 1, 3 do
      posted[i] = assert(p:order_placed(user, { id = "DR-" .. i, total = 1198 * i, lines = {
        { sku = "HDMI-2M", qty = 2 * i, price = 599, amount = 1198 * i, categories = { "electronics" } } } }))
    end
    p:close()
    local s = assert(drift.run({ orders = path }))
    assert.equal(3, s.compared)
    local est, awarded, drifting = 0, 0, 0
    for _, r in ipairs(posted) do
      est, awarded = est + r.estimate, awarded + r.points_earned
      if r.estimate ~= r.points_earned then drifting = drifting + 1 end
    end
    assert.same({ est, awarded, drifting }, { s.estimate, s.awarded, s.drifting })
  end)

  it("compares a CRM.COM award, an amount of money, with the estimate's value at the rules' point_value", function()
    local path = H.dir() .. "/crmcom.jsonl"
    local p = assert(require("loyalty").program({ provider = "crmcom",
      crm = { base_url = sb.url .. "/crmapi/rest/v2", username = "pos.user", password = "pos123",
              organisation = "SANDBOXORG", unit = "UNIT-LIMASSOL" },
      rules = "examples/rules", order_log = { path = path } }))
    local r = assert(p:order_placed({ mobile = "35799000021" }, { id = "CC-1", total = 1198, lines = {
      { sku = "HDMI-2M", qty = 2, price = 599, amount = 1198, categories = { "electronics" } } } }))
    p:close()
    local rec = cjson.decode(H.read(path))
    assert.equal("crmcom", rec.provider)
    assert.equal(r.estimate * 0.25, rec.estimate_value)
    local s = assert(drift.run({ orders = path }))
    assert.equal(1, s.in_money)
    assert.equal(rec.estimate_value, s.estimate)
    assert.equal(r.points_earned, s.awarded)
  end)
end)

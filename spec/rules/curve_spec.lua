-- `rules curve` (issue 20): earn and the most points payable by cart size per tier, as a table and an SVG chart.
local H = require("rules.helper")
local rules = require("loyalty.rules")
local curve = require("loyalty.rules.curve")
local svg = require("loyalty.rules.svg")

local function run(args)
  local out = os.tmpname()
  local vm = type(rawget(_G, "jit")) == "table" and "luajit" or "lua5.4"
  local a, _, c = os.execute(vm .. " ./bin/loyalty " .. args .. " >" .. out .. " 2>&1")
  local text = H.read(out)
  os.remove(out)
  return type(a) == "number" and a / 256 or c, text
end

describe("rules curve", function()
  teardown(H.cleanup)
  local rs = assert(rules.load("examples/rules"))

  it("gives, for every tier and size, exactly what earn and redemption give for that cart", function()
    local c = assert(curve.compute(rs, { category = "electronics" }))
    assert.same({ "SILVER", "GOLD", "PLATINUM", false }, c.tiers)
    for ti, tier in ipairs(c.tiers) do
      for si, size in ipairs(c.sizes) do
        local cart = { lines = { { sku = "X", price = size, categories = { "electronics" } } } }
        local customer = { tier = tier or nil, points = 1e12 }
        local row = c.rows[ti][si]
        assert.equal(rs:earn(customer, cart).points, row.earn)
        assert.equal(rs:redemption(customer, cart).max, row.max)
        if si > 1 then  -- more cart never earns less or pays less
          assert.is_true(row.earn >= c.rows[ti][si - 1].earn)
          assert.is_true(row.max >= c.rows[ti][si - 1].max)
        end
      end
    end
  end)

  it("prints the table and writes a well-formed chart with one line per tier and measure", function()
    local path = H.dir() .. "/curve.svg"
    local code, text = run("rules curve examples/rules --sizes 500,1000,200000 --svg " .. path)
    assert.equal(0, code, text)
    assert.truthy(text:find("SILVER", 1, true) and text:find("PLATINUM", 1, true), text)
    -- no category: the base rate; GOLD and PLATINUM reach the 2500 cap, each tier its own per-order maximum
    assert.truthy(text:find("200000.00%s+2000%s+5000%s+2500%s+7500%s+2500%s+10000%s+2000%s+5000"), text)
    local doc = H.read(path)
    assert.truthy(doc:find("^<%?xml"))
    assert.equal(1, select(2, doc:gsub("<svg ", "")))
    assert.equal(1, select(2, doc:gsub("</svg>", "")))
    local lines = 0
    for pts in doc:gmatch('points="([^"]*)"') do
      lines = lines + 1
      local n = 0
      for x, y in pts:gmatch("([%d.]+),([%d.]+)") do
        n = n + 1
        assert.is_true(tonumber(x) >= 0 and tonumber(x) <= 900 and tonumber(y) >= 0 and tonumber(y) <= 520)
      end
      assert.equal(3, n)
    end
    assert.equal(8, lines)  -- 4 tiers (incl. no tier) x earned and most payable
    -- every element is closed: self-closing, or opened and closed by name
    for name in doc:gmatch("<(%a+)[^>]*[^/]>") do
      assert.is_true(select(2, doc:gsub("<" .. name .. "[ >]", "")) == select(2, doc:gsub("</" .. name .. ">", "")),
        name)
    end
  end)

  it("escapes text in the chart", function()
    local doc = svg.chart({ { label = "A&B <x>", points = { { 1, 1 }, { 10, 5 } } } }, { title = '"t"' })
    assert.truthy(doc:find("A&amp;B &lt;x&gt;", 1, true))
    assert.truthy(doc:find("&quot;t&quot;", 1, true))
    assert.falsy(doc:find("A&B", 1, true))
  end)

  it("exits 2 when the chart cannot be written, 1 when the rules do not load", function()
    local code, text = run("rules curve examples/rules --svg /nonexistent/dir/c.svg")
    assert.equal(2, code, text)
    assert.truthy(text:find("cannot write", 1, true), text)
    code = run("rules curve /nonexistent/rules --svg " .. H.dir() .. "/c.svg")
    assert.equal(1, code)
    code = run("rules curve examples/rules --sizes 0,abc")
    assert.equal(2, code)
  end)
end)

-- Strict fixtures and name resolution (issue 20): every name a rule uses is checked, every error has its line.
local H = require("rules.helper")
local rules = require("loyalty.rules")

local function interpreter()
  return type(rawget(_G, "jit")) == "table" and "luajit" or "lua5.4"
end

local function run(args)
  local out = os.tmpname()
  local a, _, c = os.execute(interpreter() .. " ./bin/loyalty " .. args .. " >" .. out .. " 2>&1")
  local code = type(a) == "number" and a / 256 or c
  local text = H.read(out)
  os.remove(out)
  return code, text
end

local function edit(path, from, to)
  local text = H.read(path)
  local s, e = text:find(from, 1, true)
  assert(s, "text to edit not found: " .. from)
  H.write(path, text:sub(1, s - 1) .. to .. text:sub(e + 1))
end

-- The line of the first occurrence of `text` in the file.
local function line_of(path, text)
  local n = 0
  for l in (H.read(path) .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if l:find(text, 1, true) then return n end
  end
  error(text .. " not in " .. path)
end

local function warnings(dir, opts)
  local report, rs = rules.check(dir, opts)
  assert.same({}, report.errors)
  assert.truthy(rs)
  local out = {}
  for _, w in ipairs(report.warnings) do out[#out + 1] = w end
  return out
end

local function find_warning(list, text)
  for _, w in ipairs(list) do if w.message:find(text, 1, true) then return w end end
  local all = {}
  for _, w in ipairs(list) do all[#all + 1] = w.message end
  error("no warning mentions " .. text .. "; got:\n" .. table.concat(all, "\n"))
end

describe("rules check resolves names", function()
  teardown(H.cleanup)

  it("finds nothing to report in the examples", function()
    assert.same({}, warnings("examples/rules"))
    local code, text = run("rules check examples/rules")
    assert.equal(0, code, text)
  end)

  it("reports a misspelt tier key against the program's tiers, at its line, with a suggestion", function()
    local dir = H.copy_examples()
    edit(dir .. "/earn.lua", "GOLD = 1.25", "GLOD = 1.25")
    local w = find_warning(warnings(dir), "unknown tier 'GLOD' (in tier_multipliers)")
    assert.equal("earn.lua", w.file)
    assert.equal(line_of(dir .. "/earn.lua", "GLOD"), w.line)
    assert.truthy(w.message:find("(did you mean 'GOLD'?)", 1, true), w.message)
    local code, text = run("rules check " .. dir)
    assert.equal(1, code, text)
    assert.truthy(text:find("warning: unknown tier 'GLOD'", 1, true), text)
  end)

  it("finds a tier typo without a declared tier list when another file names the tier", function()
    local dir = H.copy_examples()
    edit(dir .. "/program.lua", 'tier_names = { "SILVER", "GOLD", "PLATINUM" }', "")
    edit(dir .. "/redemption.lua", "PLATINUM = { max_points", "PLATNUM = { max_points")
    local w = find_warning(warnings(dir), "unknown tier 'PLATNUM' (in tiers)")
    assert.equal("redemption.lua", w.file)
    assert.equal(line_of(dir .. "/redemption.lua", "PLATNUM"), w.line)
    assert.truthy(w.message:find("did you mean 'PLATINUM'", 1, true), w.message)
  end)

  it("checks the tier names a declared list gives, from the caller too", function()
    local dir = H.copy_examples()
    local w = find_warning(warnings(dir, { tiers = { "silver", "gold" } }), "unknown tier 'PLATINUM'")
    assert.truthy(w.line)
  end)

  it("reports a misspelt customer field and an unknown name inside bonus(), at their lines", function()
    local dir = H.copy_examples()
    edit(dir .. "/earn.lua", 'customer.tier == "GOLD"', 'customer.teir == "GOLD"')
    edit(dir .. "/earn.lua", 'return 2, "own label', 'return dobule, "own label')
    local list = warnings(dir)
    local w = find_warning(list, "'customer.teir': the customer has no field 'teir'")
    assert.equal(line_of(dir .. "/earn.lua", "customer.teir"), w.line)
    assert.truthy(w.message:find("(did you mean 'customer.tier'?)", 1, true), w.message)
    w = find_warning(list, "unknown name 'dobule' inside bonus()")
    assert.equal(line_of(dir .. "/earn.lua", "dobule"), w.line)
  end)

  it("knows the fields of lines, also through cart.lines and loops, and which cart refuse() gets", function()
    local dir = H.dir({ ["program.lua"] = H.PROGRAM,
      ["earn.lua"] = table.concat({
        "points_earned = 1", "for_every = 100",
        "function bonus(l, who, order)",
        "  if l.catgories and order.lines[1].prcie then return 2 end",
        "  for _, x in ipairs(order.lines) do if x.skus then return 3 end end",
        "  if l.sku == 'A' and order.subtotal > 0 and who.points > 0 then return 1 end",
        "end", "" }, "\n"),
      ["redemption.lua"] = "point_value = 1\nfunction refuse(c, cart)\n" ..
        "  if cart.subtotal > 5 then return 'no' end\nend\n",
    })
    local list = warnings(dir)
    assert.equal(4, find_warning(list, "'l.catgories'").line)
    assert.truthy(find_warning(list, "'l.catgories'").message:find("did you mean 'l.categories'", 1, true))
    assert.equal(4, find_warning(list, "'order.lines[...].prcie'").line)
    assert.equal(5, find_warning(list, "'x.skus'").line)
    assert.equal(3, find_warning(list, "'cart.subtotal'").line)
    assert.equal("redemption.lua", find_warning(list, "'cart.subtotal'").file)
    assert.equal(4, #list, "only the four mistakes are reported")
  end)

  it("checks tiers and categories compared with literals inside functions", function()
    local dir = H.copy_examples()
    edit(dir .. "/earn.lua", 'customer.tier == "PLATINUM"', 'customer.tier == "PLATNUM"')
    local w = find_warning(warnings(dir), "unknown tier 'PLATNUM' (in a comparison)")
    assert.equal(line_of(dir .. "/earn.lua", "PLATNUM"), w.line)
  end)

  it("checks categories compared inside a loop over a line's categories", function()
    local dir = H.copy_examples()
    H.write(dir .. "/earn.lua", H.read(dir .. "/earn.lua") .. table.concat({ "",
      "local own = bonus",
      "function bonus(line, customer, cart)",
      "  for _, c in ipairs(line.categories) do",
      '    if c == "fashoin" then return 3, "fashion week" end',
      "  end",
      "  return own(line, customer, cart)",
      "end", "" }, "\n"))
    local w = find_warning(warnings(dir), "unknown category 'fashoin' (in a comparison)")
    assert.equal(line_of(dir .. "/earn.lua", "fashoin"), w.line)
    assert.truthy(w.message:find("did you mean 'fashion'", 1, true))
  end)

  it("uses categories.lua for category names by default, and the store's list when given", function()
    local dir = H.copy_examples()
    edit(dir .. "/earn.lua", '["electronics"] = 2', '["electroncis"] = 2')
    local w = find_warning(warnings(dir), "unknown category 'electroncis' (in category_multipliers)")
    assert.equal(line_of(dir .. "/earn.lua", "electroncis"), w.line)
    assert.truthy(w.message:find("did you mean 'electronics'", 1, true))
    local code, text = run("rules check " .. dir)
    assert.equal(1, code, text)
    -- a store list makes every name count, not only near misses
    local list = warnings("examples/rules", { categories = { "electronics", "mobiles", "fashion", "groceries" } })
    find_warning(list, "unknown category 'gift-cards'")
  end)

  it("reports a SKU typo against the fixtures' SKUs, or against the store's SKU list", function()
    local dir = H.copy_examples()
    edit(dir .. "/earn.lua", '["PHONE-X12-128"] = 4', '["PHONE-X21-128"] = 4')
    local w = find_warning(warnings(dir), "unknown SKU 'PHONE-X21-128' (in sku_multipliers)")
    assert.equal(line_of(dir .. "/earn.lua", "PHONE-X21-128"), w.line)
    assert.truthy(w.message:find("did you mean 'PHONE-X12-128'", 1, true))
    find_warning(warnings("examples/rules", { skus = { "PHONE-X12-128" } }), "unknown SKU 'BAG-PAPER'")
  end)

  it("reports a tier key not in capitals, and compares it in capitals like the store", function()
    local dir = H.copy_examples()
    edit(dir .. "/earn.lua", "GOLD = 1.25", "Gold = 1.25")
    find_warning(warnings(dir), "tier 'Gold' (in tier_multipliers) is not in capitals")
    local rs = assert(rules.load(dir))
    local cart = { currency = "INR", lines = { { sku = "X", qty = 1, price = 1000, categories = {} } } }
    assert.equal(12, rs:earn({ tier = "gold" }, cart).points)
  end)

  it("compares every spelling of a tier as the store does, for earning and redemption", function()
    local rs = assert(rules.load("examples/rules"))
    local cart = { currency = "INR", lines = { { sku = "PHONE-X12-128", qty = 1, price = 24999, discount = 999,
      categories = { "mobiles" } } }, total = 30000 }
    for _, tier in ipairs({ "SILVER", "GOLD", "PLATINUM" }) do
      local want_e, want_r = rs:earn({ tier = tier }, cart), rs:redemption({ tier = tier, points = 99999 }, cart)
      for _, spelt in ipairs({ tier:lower(), tier:sub(1, 1) .. tier:sub(2):lower() }) do
        assert.equal(want_e.points, rs:earn({ tier = spelt }, cart).points, spelt)
        local r = rs:redemption({ tier = spelt, points = 99999 }, cart)
        assert.same({ want_r.max, want_r.min, want_r.limited_by }, { r.max, r.min, r.limited_by }, spelt)
      end
    end
  end)

  it("points at the line holding 50% where 0.5 belongs", function()
    local dir = H.copy_examples()
    edit(dir .. "/redemption.lua", "max_share   = 0.5 ", "max_share   = 50% ")
    local report = rules.check(dir)
    local e = report.errors[1]
    assert.equal(line_of(dir .. "/redemption.lua", "50%"), e.line)
    assert.truthy(e.message:find("0.5 for 50%", 1, true), e.message)
  end)

  it("points at the entry that is wrong inside a table, not the statement's last line", function()
    local dir = H.copy_examples()
    edit(dir .. "/earn.lua", '["groceries"]   = 0.5,', '["groceries"]   = "half",')
    edit(dir .. "/redemption.lua", "max_share = 0.8 }", "max_shares = 0.8 }")
    edit(dir .. "/earn.lua", 'exclude_skus       = { "BAG-PAPER" }', 'exclude_skus = {\n  "BAG-PAPER",\n  42,\n}')
    local lines = {}
    for _, e in ipairs(rules.check(dir).errors) do lines[e.file .. ":" .. e.message:match("^'([%w_]+)'")] = e.line end
    assert.equal(line_of(dir .. "/earn.lua", '"half"'), lines["earn.lua:category_multipliers"])
    assert.equal(line_of(dir .. "/earn.lua", "  42,"), lines["earn.lua:exclude_skus"])
    assert.equal(line_of(dir .. "/redemption.lua", "max_shares"), lines["redemption.lua:tiers"])
  end)

  it("never raises on hostile text: deep tables, unbalanced brackets, unfinished strings", function()
    local deep = "local t = " .. string.rep("{", 3000) .. string.rep("}", 3000) .. "\n"
    local brackets = "function bonus(line)\n  if " .. string.rep("line[", 2000) .. "1" ..
      " == 'x' then return 1 end\nend\n"
    for _, body in ipairs({ deep, brackets, "x = 'unfinished\n", string.rep("a.b == 'GOLD' ", 5000) }) do
      local dir = H.dir({ ["program.lua"] = H.PROGRAM,
        ["earn.lua"] = "points_earned = 1\nfor_every = 100\n" .. body })
      local ok, report = pcall(rules.check, dir)
      assert.is_true(ok, tostring(report))
      assert.is_table(report.errors)
    end
  end)

  it("reports a stray file and skips it; the rule set still loads", function()
    local dir = H.copy_examples()
    H.write(dir .. "/earn (copy).lua", "this is not lua at all")
    local report, rs = rules.check(dir)
    assert.truthy(rs)
    find_warning(report.warnings, "'earn (copy).lua' is not a rule file name, so it was skipped")
    local code, text = run("rules test " .. dir)
    assert.equal(0, code, text)
  end)
end)

describe("strict fixtures", function()
  teardown(H.cleanup)

  it("fails a fixture with a misspelt expectation key, naming the key, the fix and the line", function()
    local dir = H.copy_examples()
    local path = dir .. "/fixtures/gold_mixed_cart.lua"
    edit(path, "    points = 1290,", "    point = 1290,")
    edit(path, "max = 3400, points = 3400", "maximum = 3400, points = 3400")
    local res = assert(rules.load(dir)):run_fixtures()
    assert.equal(1, res.failed)
    local diff
    for _, r in ipairs(res.results) do if not r.ok then diff = table.concat(r.diff, "\n") end end
    assert.truthy(diff:find("unknown key 'point' in expect (did you mean 'points'?) in gold_mixed_cart.lua line " ..
      line_of(path, "point = 1290"), 1, true), diff)
    assert.truthy(diff:find("unknown key 'maximum' in expect.redemption (did you mean 'max'?)", 1, true), diff)
    local code, text = run("rules test " .. dir)
    assert.equal(1, code, text)
    assert.truthy(text:find("FAIL gold_mixed_cart.lua", 1, true), text)
  end)

  it("checks keys everywhere: customer, cart, lines, and value types", function()
    local dir = H.copy_examples()
    H.write(dir .. "/fixtures/typos.lua", table.concat({
      "return {",
      "  customer = { teir = 'GOLD' },",
      "  cart = { currency = 'INR', lines = { { sku = 'A', qty = 1, prcie = 100 } }, shiping = 5 },",
      "  expect = { points = '3' , redemption = { allowed = 'yes' } },",
      "}", "" }, "\n"))
    local res = assert(rules.load(dir)):run_fixtures()
    local diff
    for _, r in ipairs(res.results) do if r.file == "typos.lua" then diff = table.concat(r.diff, "\n") end end
    assert.truthy(diff:find("unknown key 'teir' in customer (did you mean 'tier'?) in typos.lua line 2", 1, true), diff)
    assert.truthy(diff:find("unknown key 'prcie' in cart.lines item 1 (did you mean 'price'?) in typos.lua line 3", 1,
      true), diff)
    assert.truthy(diff:find("unknown key 'shiping' in cart (did you mean 'shipping'?)", 1, true), diff)
    assert.truthy(diff:find("'allowed' in expect.redemption should be true or false", 1, true), diff)
  end)

  it("is reported by check as well, with the fixture's place", function()
    local dir = H.copy_examples()
    edit(dir .. "/fixtures/gold_mixed_cart.lua", "    points = 1290,", "    point = 1290,")
    local w = find_warning(warnings(dir), "unknown key 'point' in expect (did you mean 'points'?) in " ..
      "fixtures/gold_mixed_cart.lua line " .. line_of(dir .. "/fixtures/gold_mixed_cart.lua", "point = 1290"))
    assert.equal("fixtures/gold_mixed_cart.lua", w.file)
    local code, text = run("rules check " .. dir)
    assert.equal(1, code, text)
  end)

  it("points at the line of a syntax mistake in a fixture", function()
    local dir = H.copy_examples()
    H.write(dir .. "/fixtures/share.lua", "return {\n  cart = { lines = {} },\n  share = 50%\n\n  -- note\n" ..
      "  , expect = { points = 0 },\n}\n")
    local res = assert(rules.load(dir)):run_fixtures()
    local diff
    for _, r in ipairs(res.results) do
      if r.file == "share.lua" then diff = table.concat(r.diff, "\n") end
    end
    assert.truthy(diff and diff:find("in share.lua line 3", 1, true), diff)
  end)

  it("fails a fixture that checks nothing", function()
    local dir = H.copy_examples()
    H.write(dir .. "/fixtures/empty.lua", "return { cart = { lines = {} },\n  expect = {} }\n")
    H.write(dir .. "/fixtures/empty_red.lua", "return { cart = { lines = {} }, requested_points = 5,\n" ..
      "  expect = { points = 0, redemption = {} } }\n")
    H.write(dir .. "/fixtures/unused.lua", "return { cart = { lines = {} },\n  requested_points = 5,\n" ..
      "  expect = { points = 0 } }\n")
    H.write(dir .. "/fixtures/blank_reason.lua", "return { cart = { lines = {} },\n" ..
      "  expect = { redemption = { reason = ' ' } } }\n")
    local res = assert(rules.load(dir)):run_fixtures()
    local diffs = {}
    for _, r in ipairs(res.results) do diffs[r.file] = table.concat(r.diff, "\n") end
    assert.truthy(diffs["empty.lua"]:find("expect checks nothing", 1, true), diffs["empty.lua"])
    assert.truthy(diffs["empty.lua"]:find("line 2", 1, true), diffs["empty.lua"])
    assert.truthy(diffs["empty_red.lua"]:find("expect.redemption checks nothing", 1, true), diffs["empty_red.lua"])
    assert.truthy(diffs["unused.lua"]:find("requested_points is only used by a redemption expectation, and there is " ..
      "none in unused.lua line 2", 1, true), diffs["unused.lua"])
    assert.truthy(diffs["blank_reason.lua"]:find("reason is empty", 1, true), diffs["blank_reason.lua"])
    assert.equal(4, res.failed)
  end)

  it("gives JSON mistakes as line and column", function()
    local dir = H.copy_examples()
    local path = dir .. "/fixtures/gift_card_refused.json"
    edit(path, '"points": 37,', '"points": 37 "x": 1,')
    local res = assert(rules.load(dir)):run_fixtures()
    local diff
    for _, r in ipairs(res.results) do if not r.ok then diff = table.concat(r.diff, "\n") end end
    local line = line_of(path, '"x": 1')
    assert.truthy(diff:find("at line " .. line .. " column %d+"), diff)
    assert.falsy(diff:find("character"), diff)
    H.write(path, (H.read(path):gsub('"points": 37 "x": 1,', '"pionts": 37,')))
    res = assert(rules.load(dir)):run_fixtures()
    for _, r in ipairs(res.results) do if not r.ok then diff = table.concat(r.diff, "\n") end end
    assert.truthy(diff:find("unknown key 'pionts' in expect (did you mean 'points'?) in gift_card_refused.json line " ..
      line_of(path, "pionts") .. " column 5", 1, true), diff)
  end)
end)

describe("rules explain", function()
  teardown(H.cleanup)

  it("uses the store's tier comparison: --tier gold gets the GOLD multiplier", function()
    local code, text = run("rules explain examples/rules examples/rules/sample-cart.json --tier gold")
    assert.equal(0, code, text)
    assert.truthy(text:find("Tier GOLD: multiplier x1.25", 1, true), text)
    assert.truthy(text:find("= 1200 -> floor -> 1200 points", 1, true), text)
    assert.truthy(text:find("Points earned: 1290", 1, true), text)
  end)

  it("opens .lua fixtures", function()
    local code, text = run("rules explain examples/rules examples/rules/fixtures/platinum_capped.lua")
    assert.equal(0, code, text)
    assert.truthy(text:find("Points earned: 2500", 1, true), text)
  end)

  it("exits non-zero on an invalid cart, a misspelt key and broken JSON (with line and column)", function()
    local dir = H.dir()
    H.write(dir .. "/a.json", '{"cart": {"lines": [ {"sku": "A", "qty": 1} ]}}')
    local code, text = run("rules explain examples/rules " .. dir .. "/a.json")
    assert.equal(1, code, text)
    assert.truthy(text:find("cart line 1 has neither a price nor an amount", 1, true), text)
    H.write(dir .. "/b.json", '{"lines": [ {"sku": "A", "qty": 1, "prcie": 3} ]}')
    code, text = run("rules explain examples/rules " .. dir .. "/b.json")
    assert.equal(1, code, text)
    assert.truthy(text:find("unknown key 'prcie' in lines item 1 (did you mean 'price'?)", 1, true), text)
    assert.truthy(text:find("line 1 column 36", 1, true), text)
    H.write(dir .. "/c.json", '{"cart":\n {"lines": [ {"sku": "A" "qty": 1} ]}}')
    code, text = run("rules explain examples/rules " .. dir .. "/c.json")
    assert.equal(1, code, text)
    assert.truthy(text:find("at line 2 column %d+"), text)
  end)
end)

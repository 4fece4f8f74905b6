-- `loyalty rules check|test|explain`: the analyst's command line for rule sets.
-- Exit codes: 0 all good, 1 the rules have a problem (or a fixture failed), 2 the command was used wrongly.
local _M = {}

local rules = require("loyalty.rules")
local files = require("loyalty.rules.files")
local cli = require("loyalty.cli")

local DIR_HELP = "The rule set's directory (the installed examples: \"$(loyalty --examples-dir)/rules\")."

--- Adds check, test and explain to the `rules` command.
function _M.configure(cmd, state)
  cmd:command_target("rules_command")
  local check = cli.command(cmd, state, "check", [[
Loads program.lua, earn.lua, redemption.lua and categories.lua from DIR and reports every problem
with its file and line: misspelled settings ("did you mean ..."), wrong values, Lua mistakes, rules
that never finish. Exit code 0 when there is nothing to report, 1 otherwise.]])
  check:argument("dir", DIR_HELP)
  check:option("--categories", "The store's category names (one per line, or a JSON array); categories "
    .. "the rules mention that are not in this list are reported."):argname("<file>")

  local test = cli.command(cmd, state, "test", [[
Runs every fixture in DIR/fixtures (*.lua returning a table, or *.json) and prints PASS or FAIL for
each, with what was expected and what the rules gave. Exit code 0 when all pass, 1 when any fails or
the rules do not load.]], [[
A fixture looks like:
  return { name = "...", customer = { tier = "GOLD", points = 1200 }, cart = { ... },
           requested_points = 500,  -- optional
           expect = { points = 120, redemption = { allowed = true, max = 800 },
                      attributes = { ["SKU-1"] = { gst_slab = "18" } } } }]])
  test:argument("dir", DIR_HELP)

  local explain = cli.command(cmd, state, "explain", [[
Prints, line by line, the base amount, the rule that applied, its multiplier, rounding, the cap and
the total, then the redemption limits and verdict in words.]])
  explain:argument("dir", DIR_HELP)
  explain:argument("cart", "A fixture-like object { \"customer\": {...}, \"cart\": {...}, "
    .. "\"requested_points\": N } or a bare cart, as JSON.")
  explain:option("--tier", "Set or override the customer's tier.")
  explain:option("--points", "Set or override the customer's balance."):convert(cli.number("--points"))
    :argname("<n>")
  explain:option("--redeem", "The points asked for."):convert(cli.number("--redeem")):argname("<n>")
end

local out, err -- this run's writers

local function decode_json(text, what)
  local v, e = require("cjson.safe").decode(text)
  if v == nil then return nil, what .. " is not valid JSON: " .. tostring(e) end
  return v
end

local function read_categories(path)
  local text, e = files.read(path)
  if not text then return nil, "cannot read " .. path .. ": " .. tostring(e) end
  if text:match("^%s*%[") then
    local list, je = decode_json(text, path)
    if not list then return nil, je end
    return list
  end
  local list = {}
  for line in text:gmatch("[^\r\n]+") do
    line = line:gsub("#.*$", ""):match("^%s*(.-)%s*$")
    if line ~= "" then list[#list + 1] = line end
  end
  return list
end

local function print_problems(report)
  for _, e in ipairs(report.errors) do out:write("error: " .. e.message .. "\n") end
  for _, w in ipairs(report.warnings) do out:write("warning: " .. w.message .. "\n") end
end

local function check(a)
  local load_opts = {}
  if a.categories then
    local list, e = read_categories(a.categories)
    if not list then err:write("loyalty rules check: " .. e .. "\n") return 2 end
    load_opts.categories = list
  end
  local report, rs = rules.check(a.dir, load_opts)
  print_problems(report)
  if not rs then
    out:write(string.format("%d problem(s) in %s; the rules were not loaded\n",
                            #report.errors + #report.warnings, a.dir))
    return 1
  end
  if #report.warnings > 0 then
    out:write(string.format("%d problem(s) in %s (rule set %s)\n", #report.warnings, a.dir, rs.hash))
    return 1
  end
  out:write(string.format("ok: %s is rule set %s (%s)\n", a.dir, rs.hash, table.concat(rs.files, ", ")))
  return 0
end

local function test(a)
  local report, rs = rules.check(a.dir)
  if not rs then
    print_problems(report)
    out:write("the rules did not load, so no fixture was run\n")
    return 1
  end
  local res = rs:run_fixtures()
  for _, r in ipairs(res.results) do
    out:write((r.ok and "PASS " or "FAIL ") .. r.name .. (r.name ~= r.file and ("  (" .. r.file .. ")") or "") .. "\n")
    for _, d in ipairs(r.diff) do out:write("     " .. d .. "\n") end
  end
  if #res.results == 0 then
    out:write("no fixtures found in " .. a.dir .. "/fixtures; add at least one (see --help)\n")
    return 1
  end
  out:write(string.format("%d passed, %d failed (rule set %s)\n", res.passed, res.failed, rs.hash))
  return res.failed == 0 and 0 or 1
end

local function explain(a)
  local text, e = files.read(a.cart)
  if not text then
    err:write("loyalty rules explain: cannot read " .. a.cart .. ": " .. tostring(e) .. "\n")
    return 2
  end
  local doc, je = decode_json(text, a.cart)
  if type(doc) ~= "table" then
    err:write("loyalty rules explain: " .. tostring(je or (a.cart .. " is not an object")) .. "\n")
    return 2
  end
  local cart, customer, requested = doc, {}, nil
  if doc.cart then cart, customer, requested = doc.cart, doc.customer or {}, doc.requested_points end
  if a.tier then customer.tier = a.tier end
  if a.points then customer.points = a.points end
  if a.redeem then requested = a.redeem end
  local rs, lerr = rules.load(a.dir)
  if not rs then out:write("error: " .. lerr.message .. "\n") return 1 end
  out:write(rs:explain(customer, cart, requested))
  return 0
end

local COMMANDS = { check = check, test = test, explain = explain }

--- run(parsed args, out, err) -> exit code
function _M.run(a, o, e)
  out, err = o, e
  a.dir, a.cart, a.categories = cli.resolve(a.dir, err), cli.resolve(a.cart, err), cli.resolve(a.categories, err)
  return COMMANDS[a.rules_command](a)
end

--- main(argv [, out, err]) -> exit code: `loyalty rules argv...`.
function _M.main(argv, o, e)
  return cli.main_for("rules", argv, o, e)
end

return _M

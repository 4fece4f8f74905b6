-- `loyalty rules check|test|explain`: the analyst's command line for rule sets.
-- Exit codes: 0 all good, 1 the rules have a problem (or a fixture failed), 2 the command was used wrongly.
local _M = {}

local rules = require("loyalty.rules")
local files = require("loyalty.rules.files")

local USAGE = {
  main = [[
usage: loyalty rules <check|test|explain|replay|drift|curve> DIR [...]

  check DIR [--categories FILE]   load and validate the rule files in DIR, resolve every name they use
  test DIR                        run the fixture carts in DIR/fixtures and compare with what they expect
  replay DIR --orders LOG         what a rule change does to the logged orders and the points liability
  drift --orders LOG [DIR]        where the rules' estimate differs from what the CRM awarded
  curve DIR [--svg FILE]          earn and most points payable by cart size per tier, as a table and a chart
  explain DIR CART.json           show the arithmetic for one cart and the redemption verdict

`loyalty rules <command> --help` describes each command.
]],
  check = [[
usage: loyalty rules check DIR [--categories FILE] [--tiers FILE] [--skus FILE]

Loads program.lua, earn.lua, redemption.lua and categories.lua from DIR and reports every problem with its
file and line: misspelled settings ("did you mean ..."), wrong values, Lua mistakes, rules that never finish.
Every name the rules and fixtures use is resolved: tiers (against program.lua's tier_names), categories
(against categories.lua), SKUs, fields of customer/cart/line inside bonus() and refuse(), and names there.
--categories FILE   the store's category names (one per line, or a JSON array) instead of categories.lua;
                    every category the rules mention that is not in this list is reported.
--tiers FILE        the program's tier names, instead of program.lua's tier_names.
--skus FILE         the store's SKUs; SKUs the rules mention that are not in it are reported.
Exit code 0 when there is nothing to report, 1 otherwise.
]],
  test = [[
usage: loyalty rules test DIR

Runs every fixture in DIR/fixtures (*.lua returning a table, or *.json) and prints PASS or FAIL for each,
with what was expected and what the rules gave. A fixture looks like:
  return { name = "...", customer = { tier = "GOLD", points = 1200 }, cart = { ... },
           requested_points = 500,  -- optional
           expect = { points = 120, redemption = { allowed = true, max = 800 },
                      attributes = { ["SKU-1"] = { gst_slab = "18" } } } }
Fixtures are read strictly: a key the tools do not read (`point = 1290`) fails the fixture, with a suggestion.
Each fixture's line lists the rule entries it exercised; the end lists the entries no fixture tests.
Exit code 0 when all pass, 1 when any fails or the rules do not load.
]],
  replay = [[
usage: loyalty rules replay DIR --orders LOG [--against OLD_DIR] [--top N]

Evaluates every order in the order log (the store setting order_log) under the rules in DIR and under
OLD_DIR (without --against: the estimates logged when the orders were placed), and prints the orders
changed, points issued old -> new (total, per tier, per category), the liability in money at the CRM's
point value, the most points payable on those orders, orders that now fail or trip a limit, and the N
(default 10) orders that changed most with their arithmetic per line. Never calls the CRM.
Truncated or foreign log lines are reported with their line number and skipped.
]],
  drift = [[
usage: loyalty rules drift --orders LOG [DIR] [--tolerance N]

Compares, for every order in the order log, the rules' estimate with the points the CRM awarded, and
groups the orders where they differ by tier, category, SKU, cart size and rule set, so you see which
rule is off. With DIR the orders are re-estimated with those rules (check a fix before publishing).
--tolerance N   differences of at most N points do not count (default 0).
Exit code 0 when estimate and award agree everywhere, 1 when any order drifts, 2 when the log cannot be read.
]],
  curve = [[
usage: loyalty rules curve DIR [--svg FILE] [--sizes A,B,...] [--category C | --sku S]

Prints, for each tier, the points a cart earns and the most points that can pay for it, by cart size,
and writes the same as an SVG chart (default rules-curve.svg): earn as solid lines, the most payable as
dashed lines. Each cart is one line (of category C or SKU S; default: no category, the base rate) and
the balance is unlimited, so only the rules limit.
]],
  explain = [[
usage: loyalty rules explain DIR CART [--tier TIER] [--points N] [--redeem N] [--crm SETTINGS --customer ID]

Prints, line by line, the base amount, the rule that applied, its multiplier, rounding, the cap and the
total, then the redemption limits and verdict in words. CART (.json or .lua) is a fixture or a bare cart,
read strictly (unknown keys are errors); --tier, --points and --redeem set or override the customer's tier
(compared in capitals, as the store does) and balance and the points asked for.
--crm SETTINGS --customer ID   also ask the CRM for its own answer on this cart and show it beside the
               rules' arithmetic (CRM.COM purchase preview: a dry run, nothing is booked).
Exit code 0 when explained, 1 when the rules or the cart are invalid (or the CRM cannot answer).
]],
}

local function out(s) io.stdout:write(s) end
local function err(s) io.stderr:write(s) end

local function wants_help(args)
  for _, a in ipairs(args) do if a == "--help" or a == "-h" then return true end end
  return false
end

-- Splits args into positionals and --name value options; unknown options are usage errors.
local function parse(args, known)
  local pos, opts = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name = a:match("^%-%-(.+)$")
    if name then
      if not known[name] then return nil, "unknown option --" .. name end
      if args[i + 1] == nil then return nil, "--" .. name .. " needs a value" end
      opts[name] = args[i + 1]
      i = i + 2
    else
      pos[#pos + 1] = a
      i = i + 1
    end
  end
  return pos, opts
end

local decode_json = require("loyalty.cli.rules_input").decode_json

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
  for _, e in ipairs(report.errors) do out("error: " .. e.message .. "\n") end
  for _, w in ipairs(report.warnings) do out("warning: " .. w.message .. "\n") end
end

local function check(args)
  local pos, opts = parse(args, { categories = true, tiers = true, skus = true })
  if not pos then err("loyalty rules check: " .. opts .. "\n" .. USAGE.check) return 2 end
  if #pos ~= 1 then err(USAGE.check) return 2 end
  local load_opts = {}
  for _, k in ipairs({ "categories", "tiers", "skus" }) do  -- name lists, one per line or a JSON array
    if opts[k] then
      local list, e = read_categories(opts[k])
      if not list then err("loyalty rules check: " .. e .. "\n") return 2 end
      load_opts[k] = list
    end
  end
  local report, rs = rules.check(pos[1], load_opts)
  print_problems(report)
  if not rs then
    out(string.format("%d problem(s) in %s; the rules were not loaded\n", #report.errors + #report.warnings, pos[1]))
    return 1
  end
  if #report.warnings > 0 then
    out(string.format("%d problem(s) in %s (rule set %s)\n", #report.warnings, pos[1], rs.hash))
    return 1
  end
  out(string.format("ok: %s is rule set %s (%s)\n", pos[1], rs.hash, table.concat(rs.files, ", ")))
  return 0
end

local function test(args)
  local pos, opts = parse(args, {})
  if not pos then err("loyalty rules test: " .. opts .. "\n" .. USAGE.test) return 2 end
  if #pos ~= 1 then err(USAGE.test) return 2 end
  local report, rs = rules.check(pos[1])
  if not rs then
    print_problems(report)
    out("the rules did not load, so no fixture was run\n")
    return 1
  end
  local res = rs:run_fixtures()
  local cov = require("loyalty.rules.coverage").report(rs, res)  -- issue 20: what each fixture exercised
  for i, r in ipairs(res.results) do
    out((r.ok and "PASS " or "FAIL ") .. r.name .. (r.name ~= r.file and ("  (" .. r.file .. ")") or "") .. "\n")
    for _, d in ipairs(r.diff) do out("     " .. d .. "\n") end
    if #cov.per_fixture[i] > 0 then out("     exercised: " .. table.concat(cov.per_fixture[i], ", ") .. "\n") end
  end
  if #res.results == 0 then
    out("no fixtures found in " .. pos[1] .. "/fixtures; add at least one (see --help)\n")
    return 1
  end
  for _, l in ipairs(require("loyalty.rules.coverage").summary_lines(cov)) do out(l .. "\n") end
  out(string.format("%d passed, %d failed (rule set %s)\n", res.passed, res.failed, rs.hash))
  return res.failed == 0 and 0 or 1
end

local function explain(args)
  local pos, opts = parse(args, { tier = true, points = true, redeem = true, crm = true, customer = true })
  if not pos then err("loyalty rules explain: " .. opts .. "\n" .. USAGE.explain) return 2 end
  if #pos ~= 2 then err(USAGE.explain) return 2 end
  for _, k in ipairs({ "points", "redeem" }) do
    if opts[k] and not tonumber(opts[k]) then err("loyalty rules explain: --" .. k .. " needs a number\n") return 2 end
  end
  -- issue 20: .lua fixtures, strict keys, store tiers, non-zero exit on invalid input (loyalty.cli.rules_explain)
  return require("loyalty.cli.rules_explain").run({ dir = pos[1], cart = pos[2], tier = opts.tier,
    points = tonumber(opts.points), redeem = tonumber(opts.redeem), crm = opts.crm, customer = opts.customer })
end

-- issue 20: replay, drift and curve live in their own modules; these only turn arguments into options.
local function replay(args)
  local pos, opts = parse(args, { orders = true, against = true, top = true })
  if not pos then err("loyalty rules replay: " .. opts .. "\n" .. USAGE.replay) return 2 end
  if #pos ~= 1 or not opts.orders then err(USAGE.replay) return 2 end
  if opts.top and not tonumber(opts.top) then err("loyalty rules replay: --top needs a number\n") return 2 end
  return require("loyalty.cli.rules_replay").run({ dir = pos[1], orders = opts.orders, against = opts.against,
    top = tonumber(opts.top) })
end

local function drift(args)
  local pos, opts = parse(args, { orders = true, tolerance = true })
  if not pos then err("loyalty rules drift: " .. opts .. "\n" .. USAGE.drift) return 2 end
  if #pos > 1 or not opts.orders then err(USAGE.drift) return 2 end
  if opts.tolerance and not tonumber(opts.tolerance) then err("loyalty rules drift: --tolerance needs a number\n")
    return 2 end
  return require("loyalty.cli.rules_drift").run({ orders = opts.orders, dir = pos[1],
    tolerance = tonumber(opts.tolerance) })
end

local function curve(args)
  local pos, opts = parse(args, { svg = true, sizes = true, category = true, sku = true })
  if not pos then err("loyalty rules curve: " .. opts .. "\n" .. USAGE.curve) return 2 end
  if #pos ~= 1 then err(USAGE.curve) return 2 end
  local sizes
  if opts.sizes then
    sizes = {}
    for v in opts.sizes:gmatch("[^,%s]+") do
      local n = tonumber(v)
      if not n or n <= 0 then
        err("loyalty rules curve: --sizes needs amounts above 0, like 500,1000,5000\n")
        return 2
      end
      sizes[#sizes + 1] = n
    end
    table.sort(sizes)
  end
  return require("loyalty.cli.rules_curve").run({ dir = pos[1], svg = opts.svg, sizes = sizes,
    category = opts.category, sku = opts.sku })
end

local COMMANDS = { check = check, test = test, explain = explain, replay = replay, drift = drift, curve = curve }

function _M.main(args)
  local name = args[1]
  if name == nil or name == "--help" or name == "-h" or name == "help" then
    if name then out(USAGE.main) return 0 end
    err(USAGE.main)
    return 2
  end
  local cmd = COMMANDS[name]
  if not cmd then err("loyalty rules: unknown command '" .. name .. "'\n" .. USAGE.main) return 2 end
  local rest = {}
  for i = 2, #args do rest[#rest + 1] = args[i] end
  if wants_help(rest) then out(USAGE[name]) return 0 end
  return cmd(rest)
end

return _M

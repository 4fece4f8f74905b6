-- `loyalty rules check|test|explain|replay|drift|curve`: the analysts' tools for rule directories.
-- Subcommands are declared on the one argparse parser (loyalty.cli); replay, drift, curve and the
-- explain body live in their own modules (loyalty.cli.rules_*), which take parsed options.
local _M = {}

local rules = require("loyalty.rules")
local util = require("loyalty.util")
local cli = require("loyalty.cli")

local DIR_HELP = "The rule set's directory (the installed examples: \"$(loyalty --examples-dir)/rules\")."
local LOG_HELP = "The order log (the store setting order_log: one JSON line per posted order)."

--- Adds the rules subcommands to the `rules` command.
function _M.configure(cmd, state)
  cmd:command_target("rules_command")
  local check = cli.command(cmd, state, "check", [[
Loads program.lua, earn.lua, redemption.lua and categories.lua from DIR and reports every problem
with its file and line: misspelled settings ("did you mean ..."), wrong values, Lua mistakes, rules
that never finish. Every name the rules and fixtures use is resolved: tiers (against program.lua's
tier_names), categories (against categories.lua), SKUs, fields of customer/cart/line inside bonus()
and refuse(), and names there. DIR/fixtures run as a running storefront runs them before it takes an
edit (a failure keeps the last good set). Exit code 0 when there is nothing to report, 1 otherwise.]])
  check:argument("dir", DIR_HELP)
  check:option("--categories", "The store's category names (one per line, or a JSON array) instead of "
    .. "categories.lua; every category the rules mention that is not in this list is reported."):argname("<file>")
  check:option("--tiers", "The program's tier names (one per line, or a JSON array), instead of "
    .. "program.lua's tier_names."):argname("<file>")
  check:option("--skus", "The store's SKUs (one per line, or a JSON array); SKUs the rules mention that "
    .. "are not in it are reported."):argname("<file>")

  local test = cli.command(cmd, state, "test", [[
Runs every fixture in DIR/fixtures (*.lua returning a table, or *.json) and prints PASS or FAIL for
each, with what was expected and what the rules gave. Fixtures are read strictly: a key the tools do
not read (`point = 1290`) fails the fixture, with a suggestion. Each fixture's line lists the rule
entries it exercised; the end lists the entries no fixture tests. Exit code 0 when all pass, 1 when
any fails or the rules do not load.]], [[
A fixture looks like:
  return { name = "...", customer = { tier = "GOLD", points = 1200 }, cart = { ... },
           requested_points = 500,  -- optional
           expect = { points = 120, redemption = { allowed = true, max = 800 },
                      attributes = { ["SKU-1"] = { gst_slab = "18" } } } }]])
  test:argument("dir", DIR_HELP)

  local explain = cli.command(cmd, state, "explain", [[
Prints, line by line, the base amount, the rule that applied, its multiplier, rounding, the cap and
the total, then the redemption limits and verdict in words. CART (.json or .lua) is a fixture or a
bare cart, read strictly (unknown keys are errors). With --crm SETTINGS --customer ID the CRM's own
answer on this cart is shown beside the rules' arithmetic (where the provider documents a dry run,
such as a purchase preview: nothing is booked). Exit code 0 when explained, 1 when the rules or the
cart are invalid (or the CRM cannot answer).]])
  explain:argument("dir", DIR_HELP)
  explain:argument("cart", "A fixture (.lua or .json) or a bare cart.")
  explain:option("--tier", "Set or override the customer's tier (compared in capitals, as the store does).")
  explain:option("--points", "Set or override the customer's balance."):convert(cli.number("--points"))
    :argname("<n>")
  explain:option("--redeem", "The points asked for."):convert(cli.number("--redeem")):argname("<n>")
  explain:option("--crm", "Store settings of the CRM to ask for its own answer (a dry run)."):argname("<settings>")
  explain:option("--customer", "The customer the CRM is asked about (with --crm)."):argname("<id>")

  local replay = cli.command(cmd, state, "replay", [[
Evaluates every order in the order log under the rules in DIR and under OLD_DIR (without --against:
the estimates logged when the orders were placed), and prints the orders changed, points issued
old -> new (total, per tier, per category), the liability in money at the CRM's point value, the most
points payable on those orders, orders that now fail or trip a limit, and the N orders that changed
most with their arithmetic per line. Never calls the CRM. Truncated or foreign log lines are reported
with their line number and skipped.]])
  replay:argument("dir", DIR_HELP)
  replay:option("--orders", LOG_HELP):args(1):count(1):argname("<log>")
  replay:option("--against", "The rule set in use now, to compare with."):argname("<old_dir>")
  replay:option("--top", "How many of the most changed orders to show."):convert(cli.number("--top", true))
    :default("10"):argname("<n>")

  local drift = cli.command(cmd, state, "drift", [[
Compares, for every order in the order log, the rules' estimate with the points the CRM awarded, and
groups the orders where they differ by tier, category, SKU, cart size and rule set, so you see which
rule is off. With DIR the orders are re-estimated with those rules (check a fix before publishing).
Exit code 0 when estimate and award agree everywhere, 1 when any order drifts, 2 when the log cannot
be read.]])
  drift:argument("dir", DIR_HELP):args("?")
  drift:option("--orders", LOG_HELP):args(1):count(1):argname("<log>")
  drift:option("--tolerance", "Differences of at most N points do not count."):convert(cli.number("--tolerance"))
    :default("0"):argname("<n>")

  local curve = cli.command(cmd, state, "curve", [[
Prints, for each tier, the points a cart earns and the most points that can pay for it, by cart size,
and writes the same as an SVG chart: earn as solid lines, the most payable as dashed lines. Each cart
is one line (of category C or SKU S; default: no category, the base rate) and the balance is
unlimited, so only the rules limit.]])
  curve:argument("dir", DIR_HELP)
  curve:option("--svg", "Where the chart is written."):default("rules-curve.svg"):argname("<file>")
  curve:option("--sizes", "Cart sizes, like 500,1000,5000."):argname("<a,b,...>")
  curve:mutex(curve:option("--category", "The category of the cart's line."):argname("<c>"),
              curve:option("--sku", "The SKU of the cart's line."):argname("<s>"))
end

local out, err -- this run's writers

local decode_json = require("loyalty.cli.rules_input").decode_json

local function read_list(path)
  local text, e = util.read_file(path)
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
  for _, k in ipairs { "categories", "tiers", "skus" } do -- name lists, one per line or a JSON array
    if a[k] then
      local list, e = read_list(a[k])
      if not list then err:write("loyalty rules check: " .. e .. "\n") return 2 end
      load_opts[k] = list
    end
  end
  local report, rs = rules.check(a.dir, load_opts)
  print_problems(report)
  if not rs then
    out:write(string.format("%d problem(s) in %s; the rules were not loaded\n",
                            #report.errors + #report.warnings, a.dir))
    return 1
  end
  -- the verdict a running storefront gives an edit: a failing fixture keeps the last good set in force
  local ferr = rules.fixtures_verdict(rs)
  if ferr then
    out:write("error: " .. ferr.message .. "\n")
    out:write(string.format("a running storefront would reject %s and keep its last good rule set\n", a.dir))
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
  local coverage = require("loyalty.rules.coverage")
  local cov = coverage.report(rs, res) -- what each fixture exercised
  for i, r in ipairs(res.results) do
    out:write((r.ok and "PASS " or "FAIL ") .. r.name .. (r.name ~= r.file and ("  (" .. r.file .. ")") or "") .. "\n")
    for _, d in ipairs(r.diff) do out:write("     " .. d .. "\n") end
    if #cov.per_fixture[i] > 0 then out:write("     exercised: " .. table.concat(cov.per_fixture[i], ", ") .. "\n") end
  end
  if #res.results == 0 then
    out:write("no fixtures found in " .. a.dir .. "/fixtures; add at least one (see --help)\n")
    return 1
  end
  for _, l in ipairs(coverage.summary_lines(cov)) do out:write(l .. "\n") end
  out:write(string.format("%d passed, %d failed (rule set %s)\n", res.passed, res.failed, rs.hash))
  return res.failed == 0 and 0 or 1
end

local function writers()
  return function(s) out:write(s) end, function(s) err:write(s) end
end

local function explain(a)
  local o, e = writers()
  return require("loyalty.cli.rules_explain").run { dir = a.dir, cart = a.cart, tier = a.tier, points = a.points,
    redeem = a.redeem, crm = a.crm, customer = a.customer, out = o, err = e }
end

local function replay(a)
  local o, e = writers()
  return require("loyalty.cli.rules_replay").run { dir = a.dir, orders = a.orders, against = a.against,
    top = a.top, out = o, err = e }
end

local function drift(a)
  local o, e = writers()
  return require("loyalty.cli.rules_drift").run { orders = a.orders, dir = a.dir, tolerance = a.tolerance,
    out = o, err = e }
end

local function curve(a)
  local sizes
  if a.sizes then
    sizes = {}
    for v in a.sizes:gmatch("[^,]+") do
      local n = tonumber(v)
      if not n or n <= 0 then
        err:write("loyalty rules curve: --sizes needs amounts above 0, like 500,1000,5000\n")
        return 2
      end
      sizes[#sizes + 1] = n
    end
    table.sort(sizes)
  end
  local o, e = writers()
  return require("loyalty.cli.rules_curve").run { dir = a.dir, svg = a.svg, sizes = sizes, category = a.category,
    sku = a.sku, out = o, err = e }
end

local COMMANDS = { check = check, test = test, explain = explain, replay = replay, drift = drift, curve = curve }

--- run(parsed args, out, err) -> exit code
function _M.run(a, o, e)
  out, err = o, e
  for _, k in ipairs { "dir", "cart", "categories", "tiers", "skus", "against" } do a[k] = cli.resolve(a[k], err) end
  return COMMANDS[a.rules_command](a)
end

--- main(argv [, out, err]) -> exit code: `loyalty rules argv...`.
function _M.main(argv, o, e)
  return cli.main_for("rules", argv, o, e)
end

return _M

-- `loyalty rules check|test|explain`: the analyst's command line for rule sets.
-- Exit codes: 0 all good, 1 the rules have a problem (or a fixture failed), 2 the command was used wrongly.
local _M = {}

local rules = require("loyalty.rules")
local files = require("loyalty.rules.files")

local USAGE = {
  main = [[
usage: loyalty rules <check|test|explain> DIR [...]

  check DIR [--categories FILE]   load and validate the rule files in DIR
  test DIR                        run the fixture carts in DIR/fixtures and compare with what they expect
  explain DIR CART.json           show the arithmetic for one cart and the redemption verdict

`loyalty rules <command> --help` describes each command.
]],
  check = [[
usage: loyalty rules check DIR [--categories FILE]

Loads program.lua, earn.lua, redemption.lua and categories.lua from DIR and reports every problem with its
file and line: misspelled settings ("did you mean ..."), wrong values, Lua mistakes, rules that never finish,
and runs DIR/fixtures as a running storefront does before it takes an edit (a failure keeps the last good set).
--categories FILE   the store's category names (one per line, or a JSON array); categories the rules
                    mention that are not in this list are reported.
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
Exit code 0 when all pass, 1 when any fails or the rules do not load.
]],
  explain = [[
usage: loyalty rules explain DIR CART.json [--tier TIER] [--points N] [--redeem N]

Prints, line by line, the base amount, the rule that applied, its multiplier, rounding, the cap and the
total, then the redemption limits and verdict in words. CART.json is either a fixture-like object
{ "customer": {...}, "cart": {...}, "requested_points": N } or a bare cart; --tier, --points and --redeem
set or override the customer's tier and balance and the points asked for.
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

local function decode_json(text, what)
  local ok, cjson = pcall(require, "cjson.safe")
  if not ok then return nil, "reading " .. what .. " needs lua-cjson" end
  local v, e = cjson.decode(text)
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
  for _, e in ipairs(report.errors) do out("error: " .. e.message .. "\n") end
  for _, w in ipairs(report.warnings) do out("warning: " .. w.message .. "\n") end
end

local function check(args)
  local pos, opts = parse(args, { categories = true })
  if not pos then err("loyalty rules check: " .. opts .. "\n" .. USAGE.check) return 2 end
  if #pos ~= 1 then err(USAGE.check) return 2 end
  local load_opts = {}
  if opts.categories then
    local list, e = read_categories(opts.categories)
    if not list then err("loyalty rules check: " .. e .. "\n") return 2 end
    load_opts.categories = list
  end
  local report, rs = rules.check(pos[1], load_opts)
  print_problems(report)
  if not rs then
    out(string.format("%d problem(s) in %s; the rules were not loaded\n", #report.errors + #report.warnings, pos[1]))
    return 1
  end
  -- the verdict a running storefront gives an edit: a failing fixture keeps the last good set in force
  local ferr = rules.fixtures_verdict(rs)
  if ferr then
    out("error: " .. ferr.message .. "\n")
    out(string.format("a running storefront would reject %s and keep its last good rule set\n", pos[1]))
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
  for _, r in ipairs(res.results) do
    out((r.ok and "PASS " or "FAIL ") .. r.name .. (r.name ~= r.file and ("  (" .. r.file .. ")") or "") .. "\n")
    for _, d in ipairs(r.diff) do out("     " .. d .. "\n") end
  end
  if #res.results == 0 then
    out("no fixtures found in " .. pos[1] .. "/fixtures; add at least one (see --help)\n")
    return 1
  end
  out(string.format("%d passed, %d failed (rule set %s)\n", res.passed, res.failed, rs.hash))
  return res.failed == 0 and 0 or 1
end

local function explain(args)
  local pos, opts = parse(args, { tier = true, points = true, redeem = true })
  if not pos then err("loyalty rules explain: " .. opts .. "\n" .. USAGE.explain) return 2 end
  if #pos ~= 2 then err(USAGE.explain) return 2 end
  local text, e = files.read(pos[2])
  if not text then err("loyalty rules explain: cannot read " .. pos[2] .. ": " .. tostring(e) .. "\n") return 2 end
  local doc, je = decode_json(text, pos[2])
  if type(doc) ~= "table" then
    err("loyalty rules explain: " .. tostring(je or (pos[2] .. " is not an object")) .. "\n")
    return 2
  end
  local cart, customer, requested = doc, {}, nil
  if doc.cart then cart, customer, requested = doc.cart, doc.customer or {}, doc.requested_points end
  if opts.tier then customer.tier = opts.tier end
  for _, k in ipairs({ "points", "redeem" }) do
    if opts[k] and not tonumber(opts[k]) then err("loyalty rules explain: --" .. k .. " needs a number\n") return 2 end
  end
  if opts.points then customer.points = tonumber(opts.points) end
  if opts.redeem then requested = tonumber(opts.redeem) end
  local rs, lerr = rules.load(pos[1])
  if not rs then out("error: " .. lerr.message .. "\n") return 1 end
  out(rs:explain(customer, cart, requested))
  return 0
end

local COMMANDS = { check = check, test = test, explain = explain }

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

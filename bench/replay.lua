-- Replay benchmark: `loyalty rules replay` over a generated order log (target: 100,000 orders in under 30 s on
-- one core). The log is written by the order log's own record format; the proposed rules are the examples with
-- electronics at x3 and the cap at 2000. Rounds alternate replay against the current rules (--against) and
-- against the logged estimates; best and median CPU seconds (os.clock: one core) are reported for each.
-- Run from the repo root: `lua5.4 bench/replay.lua [N] [ROUNDS]` and `luajit bench/replay.lua [N] [ROUNDS]`.
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
-- loyalty.core: the rules' allocation cap and clocks, as in an installed rock
local jit_vm = type(rawget(_G, "jit")) == "table"
package.cpath = root .. "/build/" .. (jit_vm and "5.1" or "5.4") .. "/?.so;" .. package.cpath

local rules = require("loyalty.rules")
local replay = require("loyalty.rules.replay")
local order_log = require("loyalty.program.order_log")
local cjson = require("cjson")

local N = tonumber(arg and arg[1]) or 100000
local ROUNDS = tonumber(arg and arg[2]) or 3

local CATALOG = dofile(root .. "/bench/catalog.lua")
local TIERS = { "SILVER", "GOLD", "PLATINUM", nil }

local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p " .. sh(tmp)))
local current_dir, proposed_dir, log_path = root .. "/examples/rules", tmp .. "/proposed", tmp .. "/orders.jsonl"
assert(os.execute("cp -r " .. sh(current_dir) .. " " .. sh(proposed_dir)))
local function edit(path, from, to)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  local s, e = text:find(from, 1, true)
  assert(s, from)
  f = assert(io.open(path, "wb"))
  f:write(text:sub(1, s - 1) .. to .. text:sub(e + 1))
  f:close()
end
edit(proposed_dir .. "/earn.lua", '["electronics"] = 2', '["electronics"] = 3')
edit(proposed_dir .. "/earn.lua", "cap_per_order = 2500", "cap_per_order = 2000")

-- A deterministic month of orders (Park-Miller: every product stays below 2^53, so both VMs make the same log).
local seed = 12345
local function rand(n)
  seed = (seed * 16807) % 2147483647
  return math.floor(seed / 2147483647 * n) + 1
end
local current = assert(rules.load(current_dir))
local log = order_log.open({ path = log_path })
local f = assert(io.open(log_path, "wb"))
for i = 1, N do
  local lines, subtotal = {}, 0
  for j = 1, rand(8) do
    local p = CATALOG[rand(#CATALOG)]
    local qty = rand(3)
    lines[j] = { sku = p.sku, qty = qty, price = p.price, amount = p.price * qty, discount = p.discount,
      categories = p.categories }
    subtotal = subtotal + p.price * qty - (p.discount or 0)
  end
  local order = { id = "B-" .. i, lines = lines, shipping = 49, tax = 0, total = subtotal + 49 }
  local tier = TIERS[rand(4)]
  local est = current:earn({ tier = tier }, order)
  local rec = log:record({ order = order, ident = { key = "mobile", value = "9100000" .. i }, tier = tier,
    rules = current, estimate = est, provider = "capillary",
    result = { points_earned = est and est.points or 0, request_id = "req-" .. i, point_value = 0.25 } })
  f:write(cjson.encode(rec), "\n")
  if i % 20000 == 0 then f:write('{"v":1,"order_id":"TRUNC', "\n") end  -- a truncated line now and then
end
f:close()

local proposed = assert(rules.load(proposed_dir))
local function one(old)
  local t0 = os.clock()
  local args = { new = proposed, old = old, orders = log_path }
  local s = assert(replay.run(args))
  local text = replay.text(s, args)
  return os.clock() - t0, s, text
end

local results = { against = {}, logged = {} }
local summary
for _ = 1, ROUNDS do
  local t, s = one(current)
  results.against[#results.against + 1] = t
  summary = s
  t = one(nil)
  results.logged[#results.logged + 1] = t
end
local function stats(list)
  table.sort(list)
  return list[1], list[math.floor((#list + 1) / 2)]
end
local vm = type(rawget(_G, "jit")) == "table" and rawget(_G, "jit").version or _VERSION
print(string.format("replay bench (%s): %d orders, %d changed, %d skipped lines, %d rounds", vm, summary.orders,
  summary.changed, #summary.skipped, ROUNDS))
for _, k in ipairs({ "against", "logged" }) do
  local best, median = stats(results[k])
  print(string.format("  %-8s best %.2f s, median %.2f s CPU (%.0f orders/s best)%s", k, best, median,
    summary.orders / best, k == "against" and "  [--against: both rule sets evaluated]" or ""))
end
-- the target is per 100,000 orders; a smaller N is scaled
local scaled = stats(results.against) * 100000 / math.max(summary.orders, 1)
print(string.format("  target: 100,000 orders in under 30 s on one core (--against, best, scaled): %.2f s, %s", scaled,
  scaled < 30 and "met" or "MISSED"))
os.execute("rm -rf " .. sh(tmp))

-- Rules benchmark: the example rule set (examples/rules) on a 50-line cart, sandboxed, against the same
-- policy written as plain Lua functions producing the same result (points, per-line trace, verdict).
-- Run from the repo root: `lua5.4 bench/rules.lua [N]` and `luajit bench/rules.lua [N]`.
--   `lua5.4 bench/rules.lua --callgrind [R]` (or luajit): instructions per evaluation (needs valgrind): each
--   side runs 200 and 2200 evaluations under callgrind; (Ir(2200) - Ir(200)) / 2000 is one evaluation.
--   LuaJIT seeds its string hashes per process, so counts vary by a few percent there: R pairs (3) are averaged.
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
-- loyalty.core holds the allocation cap: with it every limit is on, as in an installed rock
local jit_vm = type(rawget(_G, "jit")) == "table"
package.cpath = root .. "/build/" .. (jit_vm and "5.1" or "5.4") .. "/?.so;" .. package.cpath

local rules = require("loyalty.rules")

local RUN_SIDE = arg and arg[1] == "--run" and arg[2]
local CALLGRIND = arg and arg[1] == "--callgrind"
local N = tonumber(arg and (RUN_SIDE and arg[3] or not CALLGRIND and arg[1])) or 2000

local CATALOG = dofile(root .. "/bench/catalog.lua")

local function make_cart()
  local lines, subtotal = {}, 0
  for i = 1, 50 do
    local p = CATALOG[(i - 1) % #CATALOG + 1]
    local qty = (i % 3) + 1
    local line = { sku = p.sku, qty = qty, price = p.price, categories = p.categories, discount = p.discount }
    lines[i] = line
    subtotal = subtotal + qty * p.price - (p.discount or 0)
  end
  return { currency = "INR", lines = lines, shipping = 99, tax = 4500, total = subtotal + 99 + 4500 }
end

-- The example rule set, by hand. Same arithmetic, same result shape, no sandbox.
local floor = math.floor
local function snap(x) return floor(x * 1e6 + 0.5) / 1e6 end
local EXCL_CAT = { ["gift-cards"] = true, tobacco = true }
local EXCL_SKU = { ["BAG-PAPER"] = true }
local CAT_MULT = { electronics = 2, fashion = 3, groceries = 0.5 }
local SKU_MULT = { ["PHONE-X12-128"] = 4 }
local TIER_MULT = { SILVER = 1, GOLD = 1.25, PLATINUM = 1.5 }
local TIERS = { GOLD = { max_points = 7500 }, PLATINUM = { max_points = 10000, max_share = 0.8 } }

local function plain_earn(customer, cart)
  local tier_mult = TIER_MULT[customer.tier] or 1
  local traces, sum, subtotal = {}, 0, 0
  for i, l in ipairs(cart.lines) do
    local qty = l.qty or 1
    local amount = l.amount or l.price * qty
    local discount = l.discount or 0
    local cats = {}
    for j, c in ipairs(l.categories or {}) do cats[j] = c end
    local base = amount - discount
    subtotal = subtotal + base
    local t = { index = i, sku = l.sku, qty = qty, price = l.price, amount = amount, discount = discount, base = base,
      categories = cats }
    local excluded
    if EXCL_SKU[l.sku] then excluded = "SKU " .. l.sku .. " is excluded from earning" end
    if not excluded then
      for _, c in ipairs(cats) do
        if EXCL_CAT[c] then excluded = "category " .. c .. " is excluded from earning" break end
      end
    end
    if excluded then
      t.excluded, t.raw, t.points = excluded, 0, 0
    else
      local mult, rule = 1, "base rate"
      if SKU_MULT[l.sku] then mult, rule = SKU_MULT[l.sku], "SKU " .. l.sku
      else
        for _, c in ipairs(cats) do
          local m = CAT_MULT[c]
          if m and (rule == "base rate" or m > mult) then mult, rule = m, "category " .. c end
        end
      end
      local bonus, why = 1, nil
      if l.sku:sub(1, 3) == "SK-" and (customer.tier == "GOLD" or customer.tier == "PLATINUM") then
        bonus, why = 2, "own label, double points for " .. customer.tier
      end
      local raw = base * 1 / 100 * mult * tier_mult * bonus
      t.rule, t.multiplier, t.tier_multiplier, t.bonus_multiplier, t.bonus_reason = rule, mult, tier_mult, bonus, why
      t.raw, t.points = snap(raw), floor(snap(raw))
    end
    traces[i] = t
    sum = sum + t.points
  end
  for _, k in ipairs({ "shipping", "tax" }) do
    local v = cart[k] or 0
    if v ~= 0 then
      traces[#traces + 1] = { sku = "(" .. k .. ")", pseudo = true, qty = 1, amount = v, discount = 0, base = v,
        categories = {}, excluded = k .. " is excluded from earning", raw = 0, points = 0 }
    end
  end
  local points = sum
  if subtotal < 499 then points = 0 elseif points > 2500 then points = 2500 end
  return { points = points, lines = traces, subtotal = subtotal }
end

local function plain_redemption(customer, cart, requested)
  for _, line in ipairs(cart.lines) do
    for _, c in ipairs(line.categories or {}) do
      if c == "gift-cards" then
        return { allowed = false, points = 0, value = 0,
          reason = "Not allowed: category gift-cards cannot be paid with points." }
      end
    end
  end
  local o = TIERS[customer.tier] or {}
  local min, max_points, share = 200, o.max_points or 5000, o.max_share or 0.5
  local max, limited_by = customer.points, "the customer's balance"
  if max_points < max then max, limited_by = max_points, "the per-order maximum" end
  local p = floor(snap(share * cart.total / 0.25))
  if p < max then max, limited_by = p, "share" end
  max = floor(max / 50) * 50
  local allowed, points = false, 0
  if customer.points >= min and max >= min then
    if requested == nil then allowed, points = true, max
    elseif requested >= min and requested <= max and requested % 50 == 0 then allowed, points = true, requested end
  end
  return { allowed = allowed, min = min, max = max, multiple_of = 50, points = points,
    value = floor(points * 0.25 * 100 + 0.5) / 100, limited_by = limited_by }
end

assert(require("loyalty.rules.sandbox").HARD_MEMORY_CAP, "build loyalty.core first (make all)")
local rs = assert(rules.load(root .. "/examples/rules"))
local cart = make_cart()
local customer = { tier = "GOLD", points = 6400 }

-- Both must agree before their speed means anything.
local a, b = assert(rs:earn(customer, cart)), plain_earn(customer, cart)
assert(a.points == b.points, "earn differs: " .. a.points .. " vs " .. b.points)
for i, t in ipairs(b.lines) do
  local s = a.lines[i]
  assert(s.points == t.points and s.raw == t.raw and s.rule == t.rule, "line " .. i .. " differs")
end
local ra, rb = assert(rs:redemption(customer, cart)), plain_redemption(customer, cart)
assert(ra.max == rb.max and ra.allowed == rb.allowed and ra.value == rb.value, "redemption differs")

local function time(fn)
  local t0 = os.clock()
  for _ = 1, N do fn(customer, cart) end
  return os.clock() - t0
end

local function sandboxed(c, k) rs:earn(c, k); rs:redemption(c, k) end
local function plain(c, k) plain_earn(c, k); plain_redemption(c, k) end
local vm = type(rawget(_G, "jit")) == "table" and rawget(_G, "jit").version or _VERSION

-- `--run SIDE N`: N evaluations of one side in this process, for callgrind to count.
if RUN_SIDE then
  local fn = assert(({ plain = plain, sandboxed = sandboxed })[RUN_SIDE], "side is plain or sandboxed")
  for _ = 1, N do fn(customer, cart) end
  return
end

if CALLGRIND then
  local interp = arg[-1] or "lua5.4"
  local function instructions(side, n)
    local p = assert(io.popen(string.format("valgrind --tool=callgrind --callgrind-out-file=/dev/null %s %s " ..
      "--run %s %d 2>&1 >/dev/null", interp, arg[0], side, n)))
    local out = p:read("*a")
    p:close()
    return (assert(tonumber(out:match("Collected : (%d+)")), "callgrind failed: " .. out))
  end
  local pairs_n = tonumber(arg[2]) or 3
  local function per_evaluation(side)
    local sum, lo, hi = 0, math.huge, 0
    for _ = 1, pairs_n do
      local v = (instructions(side, 2200) - instructions(side, 200)) / 2000
      sum, lo, hi = sum + v, math.min(lo, v), math.max(hi, v)
    end
    return sum / pairs_n, lo, hi
  end
  local p, p_lo, p_hi = per_evaluation("plain")
  local s, s_lo, s_hi = per_evaluation("sandboxed")
  print(string.format("%s, 50-line cart, earn + redemption, callgrind instructions per evaluation (mean of %d)",
    vm, pairs_n))
  print(string.format("  plain Lua   %10.0f Ir  (%.0f .. %.0f)", p, p_lo, p_hi))
  print(string.format("  sandboxed   %10.0f Ir  (%.0f .. %.0f)", s, s_lo, s_hi))
  print(string.format("  ratio       %10.2f x plain (target >= 0.80)", p / s))
  return
end

-- Warm up both, then interleave many short rounds and keep each side's best: other processes on the
-- machine slow single runs down by more than the difference being measured.
for _ = 1, math.floor(N / 10) do plain(customer, cart); sandboxed(customer, cart) end
local ROUNDS = 25
local t_plain, t_sandboxed = math.huge, math.huge
for _ = 1, ROUNDS do
  collectgarbage()
  t_plain = math.min(t_plain, time(plain))
  collectgarbage()
  t_sandboxed = math.min(t_sandboxed, time(sandboxed))
end

print(string.format("%s, 50-line cart, earn + redemption, N = %d x %d rounds (earn = %d points, max redeem %d)", vm,
  N, ROUNDS, a.points, ra.max))
print(string.format("  plain Lua   %10.0f evaluations/s", N / t_plain))
print(string.format("  sandboxed   %10.0f evaluations/s", N / t_sandboxed))
print(string.format("  ratio       %10.2f x plain (target >= 0.80)", t_plain / t_sandboxed))

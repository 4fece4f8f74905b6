-- Evaluation of validated rule settings: earn estimate, redemption verdict, line attributes.
-- Runs inside the sandbox guard (rule functions are called from here); everything it returns is plain data.
local _M = {}

local sandbox = require("loyalty.rules.sandbox")

local type, ipairs, tostring, tonumber, error = type, ipairs, tostring, tonumber, error
local floor, ceil = math.floor, math.ceil

-- Values are snapped to 6 decimals before rounding, so 0.29 * 100 is 29 and not 28.999999999999996.
local function snap(x) return floor(x * 1e6 + 0.5) / 1e6 end

local ROUNDERS = {
  floor = function(x) return floor(snap(x)) end,
  ceil = function(x) return ceil(snap(x)) end,
  round = function(x)  -- half away from zero
    x = snap(x)
    if x < 0 then return -floor(-x + 0.5) end
    return floor(x + 0.5)
  end,
}
_M.ROUNDERS = ROUNDERS

-- The same policies for values already snapped (the earn loop snaps once for the trace).
local function round_half_away(x)
  if x < 0 then return -floor(-x + 0.5) end
  return floor(x + 0.5)
end
local SNAPPED_ROUNDERS = { floor = floor, ceil = ceil, round = round_half_away }

local function money(x) return floor(x * 100 + 0.5 + 1e-9) / 100 end
_M.money = money -- rules.replay totals money as the engine does

-- Numbers in words: 3400 rather than 3400.0 (JSON input gives floats on 5.4).
local function num(x)
  if x == floor(x) and x > -1e15 and x < 1e15 then return string.format("%d", x) end
  -- string.gsub, not a method: the string metatable is the rules' one while an evaluation runs
  return (string.gsub(string.gsub(string.format("%.6f", x), "0+$", ""), "%.$", ""))
end
_M.num = num

-- Input problems are the caller's: they raise a table the ruleset turns into nil, err.
local function bad_input(message) error({ input = true, message = message }, 0) end

-- Every amount, count and point figure the engine takes in or gives out lies within +-LIMIT (finite, and
-- far above any real order); multipliers (settings and bonus) are at most MAX_MULTIPLIER.
local LIMIT = 1e12
local MAX_MULTIPLIER = 1000
local MAX_TEXT = 1024
_M.LIMIT, _M.MAX_MULTIPLIER, _M.MAX_TEXT = LIMIT, MAX_MULTIPLIER, MAX_TEXT
local function usable(x) return type(x) == "number" and x >= -LIMIT and x <= LIMIT end  -- false for NaN

-- A rules error: the rule file (and line) that produced a value the engine cannot use.
local function bad_rules(message, file, line) error({ message = message, file = file, line = line }, 0) end

-- `where` is a string or a line index, turned into words only when something is wrong.
--- The verdict on a redemption once its limits are known -> allowed, points, reason (plain words).
-- short: the reason when the balance is below the minimum (nil when it is not); step nil: the
-- CRM, not the rules, judges amounts (no multiple check). program/money.lua gives the same words.
function _M.verdict(refusal, short, min, max, limited_by, requested, step)
  if refusal then return false, 0, "Not allowed: " .. refusal .. "." end
  if short then return false, 0, short end
  if max < min or max <= 0 then
    return false, 0, "Not allowed: at most " .. num(max) .. " points can be used on this order (limited by " ..
      limited_by .. "), which is below the minimum of " .. num(min) .. "."
  end
  if requested == nil then
    return true, max, "Allowed: up to " .. num(max) .. " points can be used on this order (limited by " ..
      limited_by .. ")."
  end
  if requested < min then
    return false, 0, "Not allowed: " .. num(requested) .. " points is below the minimum of " .. num(min) .. "."
  end
  if requested > max then
    return false, 0, "Not allowed: " .. num(requested) .. " points is above the maximum of " .. num(max) ..
      " for this order (limited by " .. limited_by .. ")."
  end
  if step and requested % step ~= 0 then
    return false, 0, "Not allowed: " .. num(requested) .. " is not a multiple of " .. num(step) .. "."
  end
  return true, requested, "Allowed: " .. num(requested) .. " points (between " .. num(min) .. " and " .. num(max) ..
    ")."
end

local function number_field(t, key, where, default)
  local v = t[key]
  if v == nil then return default end
  if type(v) ~= "number" then
    local n = tonumber(v)
    if not n then
      if type(where) == "number" then where = "cart line " .. where end
      bad_input(where .. " has " .. key .. " = " .. tostring(v) .. ", which is not a number")
    end
    v = n
  end
  if not usable(v) then
    if type(where) == "number" then where = "cart line " .. where end
    bad_input(where .. " has " .. key .. " = " .. tostring(v) .. ", which is not a usable amount (finite, " ..
      "within +-" .. LIMIT .. ")")
  end
  return v
end

-- A line's qty, price, amount (price x qty when absent) and discount; plain numbers stay on
-- the fast path.
local function line_numbers(l, i)
  local qty, price, amount, discount = l.qty, l.price, l.amount, l.discount
  if type(qty) ~= "number" then qty = number_field(l, "qty", i, 1) end
  if price ~= nil and type(price) ~= "number" then price = number_field(l, "price", i) end
  if amount ~= nil and type(amount) ~= "number" then amount = number_field(l, "amount", i) end
  if type(discount) ~= "number" then discount = number_field(l, "discount", i, 0) end
  if amount == nil then
    if price == nil then bad_input("cart line " .. i .. " has neither a price nor an amount") end
    amount = price * qty
  end
  return qty, price, amount, discount
end

-- A plain copy of the customer: rules get this, never the caller's table.
function _M.normalize_customer(customer)
  if type(customer) ~= "table" then
    bad_input("the customer should be a table like { tier = \"GOLD\", points = 1200 }")
  end
  local tier = customer.tier
  if tier ~= nil and type(tier) ~= "string" then bad_input("the customer's tier should be text") end
  if tier ~= nil and #tier > MAX_TEXT then bad_input("the customer's tier is longer than " .. MAX_TEXT .. " bytes") end
  return { tier = tier, points = number_field(customer, "points", "the customer", 0) }
end

-- A cart must be a table with lines, in the rule set's currency.
local function check_cart(cart, currency)
  if type(cart) ~= "table" or type(cart.lines) ~= "table" then
    bad_input("the cart should be a table with a list of lines: { currency = \"INR\", lines = { ... } }")
  end
  if cart.currency ~= nil and cart.currency ~= currency then
    bad_input("the cart is in " .. tostring(cart.currency) .. " but these rules are written for " .. currency)
  end
end

-- The numbers of every line, checked one by one: the slow path that names the line once the cheap sum
-- check in normalize_cart found something unusable.
local function check_lines(lines)
  for i = 1, #lines do
    local l = lines[i]
    for _, k in ipairs({ "qty", "price", "amount", "discount" }) do
      if l[k] ~= nil then number_field(l, k, i) end
    end
  end
  bad_input("the cart's amounts add up to more than " .. LIMIT)
end

-- What a redemption check needs: the order total, and (only when redemption.lua has a refuse function)
-- a small copy of the lines for it to read. Cheaper than normalize_cart: no trace fields.
function _M.redemption_cart(cart, currency, with_lines, refuse_categories, refuse_skus)
  check_cart(cart, currency)
  local shipping = number_field(cart, "shipping", "the cart", 0)
  local tax = number_field(cart, "tax", "the cart", 0)
  local total = number_field(cart, "total", "the cart", nil)
  local src_lines = cart.lines
  local lines = with_lines and {} or nil
  local refused
  local check_skus, check_cats = next(refuse_skus) ~= nil, next(refuse_categories) ~= nil
  if (check_skus or check_cats) and not with_lines then
    -- one or two categories per line is the usual cart: looked at without an inner loop
    for i = 1, #src_lines do
      local l = src_lines[i]
      if type(l) == "table" then
        local sku = l.sku
        if check_skus and sku ~= nil and refuse_skus[type(sku) == "string" and sku or tostring(sku)] then
          refused = "SKU " .. tostring(sku) .. " cannot be paid with points"
          break
        end
        local src = l.categories
        if check_cats and src ~= nil then
          if type(src) == "table" then
            local c1 = src[1]
            if c1 ~= nil then
              if refuse_categories[c1] then
                refused = "category " .. tostring(c1) .. " cannot be paid with points"
                break
              end
              local c2 = src[2]
              if c2 ~= nil then
                if refuse_categories[c2] then
                  refused = "category " .. tostring(c2) .. " cannot be paid with points"
                  break
                end
                for j = 3, #src do
                  if refuse_categories[src[j]] then
                    refused = "category " .. tostring(src[j]) .. " cannot be paid with points"
                    break
                  end
                end
                if refused then break end
              end
            end
          elseif refuse_categories[src] then
            refused = "category " .. tostring(src) .. " cannot be paid with points"
            break
          end
        end
      end
    end
  end
  if total == nil or with_lines then
    local subtotal = 0
    for i = 1, #src_lines do
      local l = src_lines[i]
      if type(l) ~= "table" then bad_input("cart line " .. i .. " should be a table") end
      local qty, price, amount, discount = line_numbers(l, i)
      subtotal = subtotal + amount - discount
      if with_lines then
        local cats, src = {}, l.categories
        if src == nil then src = l.category end
        if type(src) == "table" then
          for j = 1, #src do
            local name = src[j]
            cats[j] = type(name) == "string" and name or tostring(name)
            if not refused and refuse_categories[cats[j]] then
              refused = "category " .. cats[j] .. " cannot be paid with points"
            end
          end
        elseif src ~= nil then
          cats[1] = tostring(src)
          if not refused and refuse_categories[cats[1]] then
            refused = "category " .. cats[1] .. " cannot be paid with points"
          end
        end
        local sku = l.sku
        if sku ~= nil and type(sku) ~= "string" then sku = tostring(sku) end
        if not refused and sku ~= nil and refuse_skus[sku] then
          refused = "SKU " .. sku .. " cannot be paid with points"
        end
        lines[i] = { index = i, sku = sku, qty = qty, price = price, amount = amount, discount = discount,
          categories = cats }
      end
    end
    if not (subtotal >= -LIMIT and subtotal <= LIMIT) then check_lines(src_lines) end
    total = total or (subtotal + shipping + tax)
  end
  if not usable(total) then bad_input("the cart's total " .. tostring(total) .. " is not a usable amount") end
  return { currency = currency, lines = lines or {}, shipping = shipping, tax = tax, total = total, refused = refused }
end

-- A plain copy of the cart with each line's base amount worked out.
function _M.normalize_cart(cart, currency)
  check_cart(cart, currency)
  local lines, subtotal = {}, 0
  for i, l in ipairs(cart.lines) do
    if type(l) ~= "table" then bad_input("cart line " .. i .. " should be a table") end
    local qty, price, amount, discount = line_numbers(l, i)
    local cats, src = nil, l.categories
    if src == nil then src = l.category end
    if type(src) == "table" then
      local n, first, second = #src, src[1], src[2]
      -- one or two names is the usual line; built without an inner loop, which LuaJIT leaves by a side exit
      if n == 1 and type(first) == "string" then cats = { first }
      elseif n == 2 and type(first) == "string" and type(second) == "string" then cats = { first, second }
      else
        cats = {}
        for j = 1, n do
          local name = src[j]
          cats[j] = type(name) == "string" and name or tostring(name)
        end
      end
    elseif type(src) == "string" then cats = { src }
    elseif src == nil then cats = {}
    else bad_input("cart line " .. i .. " has categories that are neither text nor a list") end
    local base = amount - discount
    subtotal = subtotal + base
    local sku = l.sku
    if sku ~= nil and type(sku) ~= "string" then sku = tostring(sku) end
    -- trace fields listed up front so the table is sized once (earn fills them in)
    lines[i] = { index = i, sku = sku, qty = qty, price = price, amount = amount, discount = discount, base = base,
      categories = cats, excluded = nil, rule = nil, multiplier = nil, tier_multiplier = nil,
      bonus_multiplier = nil, bonus_reason = nil, raw = nil, points = nil }
  end
  -- NaN or infinity in any line's amount, price x qty or discount makes the subtotal unusable
  if not (subtotal >= -LIMIT and subtotal <= LIMIT) then check_lines(cart.lines) end
  local shipping = number_field(cart, "shipping", "the cart", 0)
  local tax = number_field(cart, "tax", "the cart", 0)
  local total = number_field(cart, "total", "the cart", nil) or (subtotal + shipping + tax)
  return { currency = currency, lines = lines, subtotal = subtotal, shipping = shipping, tax = tax, total = total }
end

local function check_bonus(m, why, index, line)
  if m == nil or m == false then return 1, nil end
  if type(m) ~= "number" or not (m >= 0 and m <= MAX_MULTIPLIER) then
    bad_rules("bonus returned " .. tostring(m) .. " for line " .. index .. "; it should return a multiplier " ..
      "(a number from 0 to " .. MAX_MULTIPLIER .. ") or nothing", "earn.lua", line)
  end
  if why ~= nil then
    if type(why) == "number" then why = tostring(why) end
    if type(why) ~= "string" or #why > MAX_TEXT then
      bad_rules("bonus returned a reason for line " .. index .. " that is not text of at most " .. MAX_TEXT ..
        " bytes", "earn.lua", line)
    end
  end
  return m, why
end

-- The rule function to call for this evaluation: a file that keeps top-level locals runs its top level
-- again first (inside the limits, see sandbox.new_env), so every evaluation starts from the same state.
local function current(fn, rerun, name, file, line)
  if not rerun then return fn end
  fn = rerun()[name]
  if type(fn) ~= "function" then
    bad_rules(file .. " did not set '" .. name .. "' to a function this time", file, line)
  end
  return fn
end

-- The words of every rule a line can get, worked out once per rule set rather than once per line.
-- Keys are the names the settings use; a line's names are text (normalize_cart), so lookups match.
function _M.prepare_earn(e)
  local function texts(set, fmt)
    local out = {}
    for name in pairs(set) do out[name] = string.format(fmt, tostring(name)) end
    return out
  end
  e.excluded_sku_reason = texts(e.excluded_skus, "SKU %s is excluded from earning")
  e.excluded_category_reason = texts(e.excluded_categories, "category %s is excluded from earning")
  e.sku_rule = texts(e.sku_multipliers, "SKU %s")
  e.category_rule = texts(e.category_multipliers, "category %s")
  return e
end

-- Which rule applies to a line: nil, reason when excluded; else multiplier, rule name.
local function classify(e, line)
  local sku = line.sku
  if sku and e.excluded_skus[sku] then return nil, e.excluded_sku_reason[sku] end
  local cats = line.categories
  local n, first, second = #cats, cats[1], cats[2]
  local excluded, multipliers = e.excluded_categories, e.category_multipliers
  -- lines with one or two categories (nearly all) are looked at without an inner loop: fewer instructions
  -- on Lua 5.4, and LuaJIT would leave a compiled loop nest through a side exit on every line
  if n <= 2 then
    if first ~= nil and excluded[first] then return nil, e.excluded_category_reason[first] end
    if second ~= nil and excluded[second] then return nil, e.excluded_category_reason[second] end
  else
    for j = 1, n do
      if excluded[cats[j]] then return nil, e.excluded_category_reason[cats[j]] end
    end
  end
  local m = sku and e.sku_multipliers[sku]
  if m then return m, e.sku_rule[sku] end
  -- a line in several multiplied categories gets the highest multiplier, never the product
  local mult, rule = 1, "base rate"
  if n <= 2 then
    m = first ~= nil and multipliers[first]
    if m then mult, rule = m, e.category_rule[first] end
    m = second ~= nil and multipliers[second]
    if m and (rule == "base rate" or m > mult) then mult, rule = m, e.category_rule[second] end
  else
    for j = 1, n do
      local name = cats[j]
      m = multipliers[name]
      if m and (rule == "base rate" or m > mult) then mult, rule = m, e.category_rule[name] end
    end
  end
  return mult, rule
end

local scratch = { mults = {}, rules = {}, bases = {}, bm = {}, bw = {} }
local EXTRAS = { "shipping", "tax" }
local EXTRA_SKU = { shipping = "(shipping)", tax = "(tax)" }
local EXCLUDE_KEY = { shipping = "exclude_shipping", tax = "exclude_tax" }

function _M.earn(c, customer, cart)
  local e = c.earn
  local rounder, per_line = c.round, c.round_per == "line"
  local round_snapped = SNAPPED_ROUNDERS[c.rounding]
  local tier_mult = customer.tier and e.tier_multipliers[customer.tier] or 1
  local traces, lines = {}, cart.lines
  local n = #lines
  local subtotal, tier = cart.subtotal, customer.tier   -- before bonus, which gets (and may change) copies
  -- pass 1, trusted: exclusions and multipliers; values are kept here, out of the rules' reach.
  -- Scratch arrays are reused: evaluations never nest and these never reach rule code.
  local mults, rules, bases, bonus_m, bonus_why = scratch.mults, scratch.rules, scratch.bases, scratch.bm, scratch.bw
  for i = 1, n do
    local line = lines[i]
    traces[i] = line
    mults[i], rules[i] = classify(e, line)
    bases[i] = line.base
    bonus_m[i], bonus_why[i] = nil, nil
  end
  for _, k in ipairs(EXTRAS) do
    local v = cart[k]
    if v ~= 0 then
      n = n + 1
      traces[n] = { sku = EXTRA_SKU[k], pseudo = true, qty = 1, amount = v, discount = 0, base = v, categories = {} }
      bases[n], bonus_m[n], bonus_why[n] = v, nil, nil
      if e[EXCLUDE_KEY[k]] then mults[n], rules[n] = nil, k .. " is excluded from earning"
      else mults[n], rules[n] = 1, "base rate" end
    end
  end
  -- pass 2: the analyst's bonus function, the only rule code, under the hook
  local bonus = e.bonus
  local n_lines = #lines
  if bonus then
    sandbox.enter(e.bonus_guarded, "earn.lua")
    bonus = current(bonus, e.bonus_rerun, "bonus", "earn.lua", e.bonus_line)
    for i = 1, n_lines do
      if mults[i] then bonus_m[i], bonus_why[i] = bonus(traces[i], customer, cart) end
    end
    sandbox.leave()
  end
  -- pass 3, trusted: arithmetic and rounding
  local sum, factor = 0, e.points_earned / e.for_every
  for i = 1, n do
    local t, mult = traces[i], mults[i]
    if mult == nil then
      t.excluded, t.raw, t.points = rules[i], 0, 0
    else
      local bm, why = bonus_m[i], bonus_why[i]
      if bm == nil then bm = 1
      elseif type(bm) ~= "number" or why ~= nil and type(why) ~= "string" then
        bm, why = check_bonus(bm, why, i, e.bonus_line)
      end
      if not (bm >= 0 and bm <= MAX_MULTIPLIER) or why and #why > MAX_TEXT then
        check_bonus(bm, why, i, e.bonus_line)
      end
      local raw = bases[i] * factor * mult * tier_mult * bm
      if raw < 0 then raw = 0 end
      t.excluded = nil
      t.rule, t.multiplier, t.tier_multiplier, t.bonus_multiplier, t.bonus_reason = rules[i], mult, tier_mult, bm, why
      t.base = bases[i]
      raw = snap(raw)
      t.raw = raw
      local p = per_line and round_snapped(raw) or raw
      t.points = p
      sum = sum + p
    end
  end
  local result = { lines = traces, subtotal = subtotal, tier = tier, tier_multiplier = tier_mult,
    rounding = c.rounding, round_per = c.round_per, minimum_order = e.minimum_order, cap = e.cap_per_order }
  local points = per_line and sum or rounder(sum)
  result.before_cap = points
  if e.minimum_order and subtotal < e.minimum_order then
    result.below_minimum = true
    points = 0
  elseif e.cap_per_order and points > e.cap_per_order then
    result.capped = true
    points = e.cap_per_order
  end
  if not (points >= 0 and points <= LIMIT) then
    bad_rules("the points worked out to " .. tostring(points) .. ", outside 0 to " .. LIMIT, "earn.lua")
  end
  result.points = points
  return result
end

-- A tier's override of a redemption setting, else the setting; second value: whether the tier set it.
local function pick(o, r, key)
  if o and o[key] ~= nil then return o[key], true end
  return r[key], false
end

-- The limits of one tier (o = its overrides, or nil for the general settings) with their names in words,
-- worked out once per rule set: only the customer's balance and the order total change per evaluation.
function _M.redemption_plan(r, tier, o)
  local tier_note = tier and (" for " .. tier) or ""
  local plan = { tier_note = tier_note }
  local min, min_from_tier = pick(o, r, "min_points")
  plan.min_from_tier = min_from_tier
  local max_points, max_from_tier = pick(o, r, "max_points")
  if max_points then
    plan.max_points, plan.max_name = max_points, "the per-order maximum" .. (max_from_tier and tier_note or "")
  end
  local step = pick(o, r, "multiple_of") or 1
  plan.step, plan.step_name = step, "whole multiples of " .. step
  local share, share_from_tier = pick(o, r, "max_share")
  if share then
    plan.share = share
    plan.share_name = floor(share * 100 + 0.5) .. "% of the order total" .. (share_from_tier and tier_note or "")
  end
  min = min or 0
  if step > 1 then min = ceil(min / step) * step end
  plan.min = min
  return plan
end

-- Plans for the general settings and for every tier that overrides them.
function _M.prepare_redemption(r)
  r.general_plan = _M.redemption_plan(r, nil, nil)
  r.tier_plans = {}
  for tier, o in pairs(r.tiers) do r.tier_plans[tier] = _M.redemption_plan(r, tier, o) end
  return r
end

local BALANCE = "the customer's balance"

function _M.redemption(c, customer, cart, requested)
  local r = c.redemption
  local tier = customer.tier
  local plan = tier and r.tier_plans[tier] or r.general_plan
  local min, step, share, max_points = plan.min, plan.step, plan.share, plan.max_points
  local min_from_tier, tier_note = plan.min_from_tier, plan.tier_note
  local balance = customer.points

  local limits = { { name = BALANCE, points = balance } }
  local max, limited_by = balance, BALANCE
  if max_points then
    limits[#limits + 1] = { name = plan.max_name, points = max_points }
    if max_points < max then max, limited_by = max_points, plan.max_name end
  end
  if share and cart.total then
    local p = c.round(share * cart.total / r.point_value)
    limits[#limits + 1] = { name = plan.share_name, points = p, share = share, total = cart.total }
    if p < max then max, limited_by = p, plan.share_name end
  end
  if max < 0 then max = 0 end
  if step > 1 then
    local stepped = floor(max / step) * step
    if stepped ~= max then
      limits[#limits + 1] = { name = plan.step_name, points = stepped }
      max = stepped
    end
  end

  local res = { min = min, max = max, multiple_of = step, balance = balance, requested = requested, tier = tier,
    limited_by = limited_by, limits = limits, point_value = r.point_value, currency = c.currency,
    min_from_tier = min_from_tier }
  local refusal = cart.refused
  if r.refuse and not refusal then
    sandbox.enter(r.refuse_guarded, "redemption.lua")
    refusal = current(r.refuse, r.refuse_rerun, "refuse", "redemption.lua", r.refuse_line)(customer, cart)
    sandbox.leave()
    if refusal == nil or refusal == false then refusal = nil
    else
      if type(refusal) == "number" then refusal = tostring(refusal) end
      if type(refusal) ~= "string" or #refusal > MAX_TEXT then
        bad_rules("refuse returned " .. type(refusal) .. "; it should return a reason (text of at most " ..
          MAX_TEXT .. " bytes) or nothing", "redemption.lua", r.refuse_line)
      end
    end
  end
  local short = balance < min and ("Not allowed: the customer has " .. num(balance) .. " points; at least " ..
    num(min) .. " are needed to redeem" .. (min_from_tier and (" (the minimum" .. tier_note .. ")") or "") .. ".")
  local allowed, points, reason = _M.verdict(refusal, short, min, max, limited_by, requested, step)
  res.allowed, res.points, res.value, res.reason = allowed, points, money(points * r.point_value), reason
  if not (max >= 0 and max <= LIMIT and res.value <= LIMIT) then
    bad_rules("the redemption limit worked out to " .. tostring(max) .. ", outside 0 to " .. LIMIT,
      "redemption.lua")
  end
  res.refused = refusal
  return res
end

-- Attributes of one line: categories in precedence order, the first to set an attribute wins; SKU attributes
-- override categories. Sorted by attribute name.
function _M.line_attributes(c, line)
  local cat = c.categories
  if not cat then return {} end
  local src = line.categories
  if src == nil then src = line.category end
  if type(src) == "string" then src = { src } end
  local chosen, names = {}, {}
  local ordered = {}
  if type(src) == "table" then
    for i, name in ipairs(src) do ordered[i] = tostring(name) end
    if #ordered > 1 then
      local rank, pos = cat.rank, {}
      for i, name in ipairs(ordered) do pos[name] = i end
      table.sort(ordered, function(a, b)
        local ra, rb = rank[a], rank[b]
        if ra and rb then return ra < rb end
        if ra or rb then return ra ~= nil end
        return pos[a] < pos[b]
      end)
    end
  end
  for _, name in ipairs(ordered) do
    local attrs = cat.attributes[name]
    if attrs then
      for _, a in ipairs(attrs) do
        if chosen[a.name] == nil then
          chosen[a.name] = a.value
          names[#names + 1] = a.name
        end
      end
    end
  end
  local sku_attrs = line.sku ~= nil and cat.sku_attributes[tostring(line.sku)]
  if sku_attrs then
    for _, a in ipairs(sku_attrs) do
      if chosen[a.name] == nil then names[#names + 1] = a.name end
      chosen[a.name] = a.value
    end
  end
  table.sort(names)
  local out = {}
  for i, n in ipairs(names) do out[i] = { name = n, value = chosen[n] } end
  return out
end

return _M

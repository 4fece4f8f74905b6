-- Evaluation of validated rule settings: earn estimate, redemption verdict, line attributes.
-- Runs inside the sandbox guard (rule functions are called from here); everything it returns is plain data.
local _M = {}

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

local function money(x) return floor(x * 100 + 0.5 + 1e-9) / 100 end
_M.money = money

-- Numbers in words: 3400 rather than 3400.0 (JSON input gives floats on 5.4).
local function num(x)
  if x == floor(x) and x > -1e15 and x < 1e15 then return string.format("%d", x) end
  return (string.format("%.6f", x):gsub("0+$", ""):gsub("%.$", ""))
end
_M.num = num

-- Input problems are the caller's: they raise a table the ruleset turns into nil, err.
local function bad_input(message) error({ input = true, message = message }, 0) end

local function number_field(t, key, where, default)
  local v = t[key]
  if v == nil then return default end
  if type(v) ~= "number" then
    local n = tonumber(v)
    if not n then bad_input(where .. " has " .. key .. " = " .. tostring(v) .. ", which is not a number") end
    return n
  end
  return v
end

-- A plain copy of the customer: rules get this, never the caller's table.
function _M.normalize_customer(customer)
  if type(customer) ~= "table" then bad_input("the customer should be a table like { tier = \"GOLD\", points = 1200 }") end
  local tier = customer.tier
  if tier ~= nil and type(tier) ~= "string" then bad_input("the customer's tier should be text") end
  return { tier = tier, points = number_field(customer, "points", "the customer", 0) }
end

-- A plain copy of the cart with each line's base amount worked out.
function _M.normalize_cart(cart, currency)
  if type(cart) ~= "table" or type(cart.lines) ~= "table" then
    bad_input("the cart should be a table with a list of lines: { currency = \"INR\", lines = { ... } }")
  end
  if cart.currency ~= nil and cart.currency ~= currency then
    bad_input("the cart is in " .. tostring(cart.currency) .. " but these rules are written for " .. currency)
  end
  local lines, subtotal = {}, 0
  for i, l in ipairs(cart.lines) do
    local where = "cart line " .. i
    if type(l) ~= "table" then bad_input(where .. " should be a table") end
    local qty = number_field(l, "qty", where, 1)
    local price = number_field(l, "price", where, nil)
    local amount = number_field(l, "amount", where, nil)
    if amount == nil then
      if price == nil then bad_input(where .. " has neither a price nor an amount") end
      amount = price * qty
    end
    local discount = number_field(l, "discount", where, 0)
    local cats, src = {}, l.categories
    if src == nil then src = l.category end
    if type(src) == "string" then cats[1] = src
    elseif type(src) == "table" then
      for j, c in ipairs(src) do cats[j] = tostring(c) end
    elseif src ~= nil then bad_input(where .. " has categories that are neither text nor a list") end
    local base = amount - discount
    subtotal = subtotal + base
    lines[i] = { index = i, sku = l.sku ~= nil and tostring(l.sku) or nil, qty = qty, price = price,
      amount = amount, discount = discount, base = base, categories = cats }
  end
  local shipping = number_field(cart, "shipping", "the cart", 0)
  local tax = number_field(cart, "tax", "the cart", 0)
  local total = number_field(cart, "total", "the cart", nil) or (subtotal + shipping + tax)
  return { currency = currency, lines = lines, subtotal = subtotal, shipping = shipping, tax = tax, total = total }
end

local function call_bonus(bonus, line, customer, cart)
  local m, why = bonus(line, customer, cart)
  if m == nil or m == false then return 1, nil end
  if type(m) ~= "number" or m ~= m or m < 0 then
    error({ message = "bonus returned " .. tostring(m) .. " for line " .. line.index ..
      "; it should return a multiplier (a number, 0 or more) or nothing", file = "earn.lua" }, 0)
  end
  if why ~= nil then why = tostring(why) end
  return m, why
end

-- One earnable line (or the shipping/tax pseudo-line) → its trace entry.
local function earn_line(e, rounder, per_line, line, customer, cart, tier_mult)
  local t = line
  local sku = line.sku
  if sku and e.excluded_skus[sku] then
    t.excluded = "SKU " .. sku .. " is excluded from earning"
    t.raw, t.points = 0, 0
    return t
  end
  for _, c in ipairs(line.categories) do
    if e.excluded_categories[c] then
      t.excluded = "category " .. c .. " is excluded from earning"
      t.raw, t.points = 0, 0
      return t
    end
  end
  local mult, rule = 1, "base rate"
  local m = sku and e.sku_multipliers[sku]
  if m then
    mult, rule = m, "SKU " .. sku
  else
    -- a line in several multiplied categories gets the highest multiplier, never the product
    for _, c in ipairs(line.categories) do
      m = e.category_multipliers[c]
      if m and (rule == "base rate" or m > mult) then mult, rule = m, "category " .. c end
    end
  end
  local base = line.base  -- read before the bonus function sees the line
  local bonus_mult, bonus_reason = 1, nil
  if e.bonus and not line.pseudo then bonus_mult, bonus_reason = call_bonus(e.bonus, line, customer, cart) end
  local raw = base * e.points_earned / e.for_every * mult * tier_mult * bonus_mult
  if raw < 0 then raw = 0 end
  t.rule, t.multiplier, t.tier_multiplier = rule, mult, tier_mult
  t.bonus_multiplier, t.bonus_reason = bonus_mult, bonus_reason
  t.raw = snap(raw)
  t.points = per_line and rounder(raw) or t.raw
  return t
end

function _M.earn(c, customer, cart)
  local e = c.earn
  local rounder, per_line = c.round, c.round_per == "line"
  local tier_mult = customer.tier and e.tier_multipliers[customer.tier] or 1
  local traces, sum = {}, 0
  for i, line in ipairs(cart.lines) do
    local t = earn_line(e, rounder, per_line, line, customer, cart, tier_mult)
    traces[i] = t
    sum = sum + t.points
  end
  local extras = {}
  for _, k in ipairs({ "shipping", "tax" }) do
    local v = cart[k]
    if v ~= 0 then
      local pseudo = { sku = "(" .. k .. ")", pseudo = true, qty = 1, amount = v, discount = 0, base = v, categories = {} }
      if e["exclude_" .. k] then
        pseudo.excluded, pseudo.raw, pseudo.points = k .. " is excluded from earning", 0, 0
      else
        earn_line(e, rounder, per_line, pseudo, customer, cart, tier_mult)
        sum = sum + pseudo.points
      end
      extras[#extras + 1] = pseudo
    end
  end
  for _, p in ipairs(extras) do traces[#traces + 1] = p end
  local result = { lines = traces, subtotal = cart.subtotal, tier = customer.tier, tier_multiplier = tier_mult,
    rounding = c.rounding, round_per = c.round_per, minimum_order = e.minimum_order, cap = e.cap_per_order }
  local points = per_line and sum or rounder(sum)
  result.before_cap = points
  if e.minimum_order and cart.subtotal < e.minimum_order then
    result.below_minimum = true
    points = 0
  elseif e.cap_per_order and points > e.cap_per_order then
    result.capped = true
    points = e.cap_per_order
  end
  result.points = points
  return result
end

function _M.redemption(c, customer, cart, requested)
  local r = c.redemption
  local tier = customer.tier
  local o = tier and r.tiers[tier] or nil
  local function pick(key)
    if o and o[key] ~= nil then return o[key], true end
    return r[key], false
  end
  local min, min_from_tier = pick("min_points")
  min = min or 0
  local max_points, max_from_tier = pick("max_points")
  local step = pick("multiple_of") or 1
  local share, share_from_tier = pick("max_share")
  local balance = customer.points
  local tier_note = tier and (" for " .. tier) or ""

  local limits = { { name = "the customer's balance", points = balance } }
  local max, limited_by = balance, limits[1].name
  if max_points then
    limits[#limits + 1] = { name = "the per-order maximum" .. (max_from_tier and tier_note or ""), points = max_points }
    if max_points < max then max, limited_by = max_points, limits[#limits].name end
  end
  if share and cart.total then
    local p = c.round(share * cart.total / r.point_value)
    limits[#limits + 1] = { name = floor(share * 100 + 0.5) .. "% of the order total" ..
      (share_from_tier and tier_note or ""), points = p, share = share, total = cart.total }
    if p < max then max, limited_by = p, limits[#limits].name end
  end
  if max < 0 then max = 0 end
  if step > 1 then
    local stepped = floor(max / step) * step
    if stepped ~= max then
      limits[#limits + 1] = { name = "whole multiples of " .. step, points = stepped }
      max = stepped
    end
    min = ceil(min / step) * step
  end

  local res = { min = min, max = max, multiple_of = step, balance = balance, requested = requested, tier = tier,
    limited_by = limited_by, limits = limits, point_value = r.point_value, currency = c.currency,
    min_from_tier = min_from_tier }
  local refusal
  if r.refuse then
    refusal = r.refuse(customer, cart)
    if refusal ~= nil and refusal ~= false then refusal = tostring(refusal) else refusal = nil end
  end
  local allowed, points, reason = false, 0, nil
  if refusal then
    reason = "Not allowed: " .. refusal .. "."
  elseif balance < min then
    reason = "Not allowed: the customer has " .. num(balance) .. " points; at least " .. num(min) .. " are needed to redeem" ..
      (min_from_tier and (" (the minimum" .. tier_note .. ")") or "") .. "."
  elseif max < min or max <= 0 then
    reason = "Not allowed: at most " .. num(max) .. " points can be used on this order (limited by " .. limited_by ..
      "), which is below the minimum of " .. num(min) .. "."
  elseif requested == nil then
    allowed, points = true, max
    reason = "Allowed: up to " .. num(max) .. " points can be used on this order (limited by " .. limited_by .. ")."
  elseif requested < min then
    reason = "Not allowed: " .. num(requested) .. " points is below the minimum of " .. num(min) .. "."
  elseif requested > max then
    reason = "Not allowed: " .. num(requested) .. " points is above the maximum of " .. num(max) .. " for this order (limited by " ..
      limited_by .. ")."
  elseif requested % step ~= 0 then
    reason = "Not allowed: " .. num(requested) .. " is not a multiple of " .. num(step) .. "."
  else
    allowed, points = true, requested
    reason = "Allowed: " .. num(requested) .. " points (between " .. num(min) .. " and " .. num(max) .. ")."
  end
  res.allowed, res.points, res.value, res.reason = allowed, points, money(points * r.point_value), reason
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

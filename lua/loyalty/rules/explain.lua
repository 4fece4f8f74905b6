-- Turns earn and redemption results into the arithmetic an analyst can check by hand.
local _M = {}

local format, concat = string.format, table.concat

local num = require("loyalty.rules.engine").num
local util = require("loyalty.util")
_M.num = num

local function money(x) return format("%.2f", x) end

local function line_label(t)
  if t.pseudo then return t.sku:sub(2, -2) end
  return "Line " .. t.index .. "  " .. (t.sku or "(no SKU)")
end

local function earn_lines(out, c, res)
  local e = c.earn
  out[#out + 1] = format("Earn rate: %s point%s for every %s %s; rounding: %s, per %s",
    num(e.points_earned), e.points_earned == 1 and "" or "s", num(e.for_every), c.currency, c.rounding, c.round_per)
  if res.tier then
    out[#out + 1] = format("Tier %s: multiplier x%s", res.tier, num(res.tier_multiplier))
  end
  out[#out + 1] = ""
  for _, t in ipairs(res.lines) do
    local head
    if t.pseudo then
      head = format("%s %s", line_label(t), money(t.base))
    else
      head = format("%s  %s x %s = %s", line_label(t), num(t.qty), t.price and money(t.price) or "?", money(t.amount))
      if t.discount ~= 0 then head = head .. format(", discount %s", money(t.discount)) end
      head = head .. format(" -> base %s", money(t.base))
      if #t.categories > 0 then head = head .. "  [" .. concat(t.categories, ", ") .. "]" end
    end
    out[#out + 1] = head
    if t.excluded then
      out[#out + 1] = "  excluded: " .. t.excluded .. " -> 0 points"
    else
      local rule = format("  rule: %s x%s", t.rule, num(t.multiplier))
      if t.tier_multiplier ~= 1 then rule = rule .. format(", tier %s x%s", res.tier, num(t.tier_multiplier)) end
      if t.bonus_multiplier ~= 1 or t.bonus_reason then
        local why = t.bonus_reason and (" (" .. t.bonus_reason .. ")") or ""
        rule = rule .. format(", bonus x%s%s", num(t.bonus_multiplier), why)
      end
      out[#out + 1] = rule
      local factors = format("%s / %s x %s x %s", money(t.base), num(e.for_every), num(e.points_earned),
        num(t.multiplier))
      if t.tier_multiplier ~= 1 then factors = factors .. " x " .. num(t.tier_multiplier) end
      if t.bonus_multiplier ~= 1 then factors = factors .. " x " .. num(t.bonus_multiplier) end
      if c.round_per == "line" then
        out[#out + 1] = format("  %s = %s -> %s -> %s points", factors, num(t.raw), c.rounding, num(t.points))
      else
        out[#out + 1] = format("  %s = %s points (rounded once for the whole order)", factors, num(t.raw))
      end
    end
  end
  out[#out + 1] = ""
  if res.minimum_order then
    out[#out + 1] = format("Merchandise subtotal %s; minimum order %s: %s", money(res.subtotal),
      money(res.minimum_order), res.below_minimum and "NOT met, so nothing is earned" or "met")
  end
  if c.round_per == "order" then
    local raw = 0
    for _, t in ipairs(res.lines) do raw = raw + t.points end
    out[#out + 1] = format("Sum of lines %s -> %s -> %s points", num(raw), c.rounding, num(res.before_cap))
  else
    out[#out + 1] = format("Sum of lines: %s points", num(res.before_cap))
  end
  if res.cap then
    out[#out + 1] = format("Cap per order %s points: %s", num(res.cap),
      res.capped and ("applied, " .. num(res.before_cap) .. " -> " .. num(res.points)) or "not reached")
  end
  out[#out + 1] = format("Points earned: %s", num(res.points))
end

local function redemption_lines(out, c, r)
  out[#out + 1] = format("Redemption%s", r.requested and (" of " .. num(r.requested) .. " points") or "")
  out[#out + 1] = format("  1 point = %s %s; minimum %s points%s%s", num(c.redemption.point_value), c.currency,
    num(r.min), r.min_from_tier and (" (" .. r.tier .. ")") or "",
    r.multiple_of > 1 and ("; whole multiples of " .. r.multiple_of) or "")
  for _, l in ipairs(r.limits) do
    local extra = ""
    if l.share then extra = format(" (%s x %s / %s)", money(l.total), num(l.share), num(c.redemption.point_value)) end
    out[#out + 1] = format("  limit: %s = %s points%s", l.name, num(l.points), extra)
  end
  out[#out + 1] = format("  maximum for this order: %s points (limited by %s)", num(r.max), r.limited_by)
  out[#out + 1] = "  Verdict: " .. r.reason
  if r.allowed then
    out[#out + 1] = format("  %s points = %s %s off the order", num(r.points), money(r.value), c.currency)
  end
end

-- earn_res / red_res may be nil with an error message instead (a rule set may lack one of the files).
function _M.text(ruleset, customer, earn_res, earn_err, red_res, red_err)
  local c = ruleset.compiled
  local out = {}
  out[#out + 1] = format("Rule set %s (%s)", ruleset.hash, concat(ruleset.files, ", "))
  out[#out + 1] = format("Customer: tier %s, balance %s points", tostring(customer.tier or "(none)"),
    num(tonumber(customer.points) or 0))
  if earn_res then earn_lines(out, c, earn_res)
  else out[#out + 1] = "Earn: " .. util.message_of(earn_err) end
  out[#out + 1] = ""
  if red_res then redemption_lines(out, c, red_res)
  else out[#out + 1] = "Redemption: " .. util.message_of(red_err) end
  return concat(out, "\n") .. "\n"
end

return _M

-- Money at the CRM's rate: the value of a point is what the CRM pays for it (learnt from its
-- answers and cached), the rules' point_value is only checked against it, and every share cap
-- (max_share) is worked out in money at that rate. Local limits may be stricter than the CRM's,
-- never more generous.
local engine = require "loyalty.rules.engine"

local _M = {}

local floor = math.floor

-- Snapped to 6 decimals first, so that 0.5 * 1047 / 0.5 is 1047 and not 1046.9999999.
local function snap(x) return floor(x * 1e6 + 0.5) / 1e6 end

--- Money to 2 decimals, half up (the rules' own money rounding).
function _M.money(x)
  return floor(snap(x) * 100 + 0.5) / 100
end

--- The CRM's value of one point from a redeemability/redeem item: what it pays for
-- the points it valued (points_redeem_value / the item's own points, else the points asked), else
-- its points_currency_ratio.
local function sane(rate)
  if type(rate) == "number" and rate > 0 and rate < 1e9 then return rate end -- not NaN, not inf
  return nil
end

function _M.rate_of_item(item, points)
  if type(item) ~= "table" then return nil end
  local value = tonumber(item.points_redeem_value or item.redeemed_value)
  -- The points the reply itself names are what its value is for (the CRM is the authority).
  local asked = tonumber(item.points or item.points_redeemed)
  if not (asked and asked > 0) then asked = tonumber(points) end
  if value and asked and asked > 0 and sane(value / asked) then return value / asked end
  return sane(tonumber(item.points_currency_ratio))
end

-- Rates are kept per tier: a CRM may pay tiers differently.
local function tier_key(tier) return type(tier) == "string" and tier:upper() or "" end

--- Learns the CRM's rate for customers of `tier` (from an answer) and checks the rules'
-- point_value against it. program: a loyalty.program; source: which answer revealed it.
function _M.learn(program, rate, source, tier)
  if not sane(rate) then return end
  local r = { value = rate, at = program.clock(), source = source, tier = tier }
  program.crm_rates = program.crm_rates or {}
  program.crm_rates[tier_key(tier)] = r
  program.crm_rate = r
  _M.check_rules(program)
end

--- The cached rate for `tier` when still fresh (point_value_ttl_s), else nil.
function _M.cached(program, tier)
  local r = program.crm_rates and program.crm_rates[tier_key(tier)]
  if r and program.clock() - r.at < program.settings.point_value_ttl_s then
    program.crm_rate = r
    return r.value
  end
  return nil
end

--- Compares the rule set's point_value with the CRM's rate: at each new rule set and each answer
-- that reveals the rate. A mismatch is a warn event `point_value_mismatch` (once per rule set and
-- rate) and stays in program.point_value_mismatch; figures are always worked out at the CRM's rate.
function _M.check_rules(program, rs)
  rs = rs or program:ruleset()
  local r = program.crm_rate
  if not (rs and r and rs.compiled and rs.compiled.redemption) then return nil end
  local mine = rs.compiled.redemption.point_value
  if type(mine) ~= "number" then return nil end
  if math.abs(mine - r.value) <= 1e-9 then
    program.point_value_mismatch = nil
    return nil
  end
  local m = { rules_point_value = mine, crm_point_value = r.value, rules_hash = rs.hash, source = r.source,
              currency = rs.currency,
              message = "the rules value a point at " .. mine .. " " .. tostring(rs.currency) ..
                        " but the CRM pays " .. r.value .. "; the CRM's rate is used" }
  local key = tostring(rs.hash) .. "|" .. tostring(r.value)
  if program.mismatch_warned ~= key then
    program.mismatch_warned = key
    program:emit("warn", "point_value_mismatch", m)
  end
  program.point_value_mismatch = m
  return m
end

--- The verdict on a redemption with every money limit at the CRM's rate.
-- base: the rules' verdict for this customer and cart with no points asked (its limits, minimum,
-- step and refusal), or nil without rules; balance: the CRM's; cart_total: money or nil (no cart:
-- a summary, where no share applies); requested: points or nil (the most allowed).
-- crm (optional): the CRM's own per-transaction limits {min, max} in points (a wallet's spend
-- limits), so that nothing is offered that it would refuse, and `unit`, the smallest amount it
-- books (0.01 where the wallet holds money).
function _M.verdict(base, balance, rate, cart_total, requested, crm)
  balance = tonumber(balance) or 0
  local min, step, refusal = 0, 1, nil
  local max, limited_by = balance, "the customer's balance"
  local share
  if base then
    min, step, refusal = base.min or 0, base.multiple_of or 1, base.refused
    for _, l in ipairs(base.limits or {}) do
      if l.share then
        share = l
      elseif l.points < max and not l.name:find("^whole multiples") then
        max, limited_by = l.points, l.name
      end
    end
  end
  if crm and requested == nil and tonumber(crm.min) and tonumber(crm.min) > min then min = tonumber(crm.min) end
  -- The smallest amount the CRM books: a whole point, or a cent where the wallet holds money.
  local unit = crm and tonumber(crm.unit) or 1
  local res = { min = min, multiple_of = step, balance = balance, requested = requested, point_value = rate }
  if share and cart_total then
    -- The share cap in money; the points it buys at the CRM's rate, never rounded up past it.
    res.max_share, res.max_share_value = share.share, _M.money(share.share * cart_total)
    local p = floor(snap(share.share * cart_total / rate / unit)) * unit
    if p < max then max, limited_by = p, share.name end
  end
  if cart_total then
    -- Points never pay more than the order costs, with or without rules.
    local p = floor(snap(cart_total / rate / unit)) * unit
    if p < max then max, limited_by = p, "the order total" end
  end
  -- The CRM's own limits shape what is offered; an amount asked for is the CRM's to judge (in its words).
  if crm and requested == nil and tonumber(crm.max) and tonumber(crm.max) < max then
    max, limited_by = tonumber(crm.max), "the CRM's maximum per transaction"
  end
  if max < 0 then max = 0 end
  if step > 1 then max = floor(max / step) * step end
  if unit < 1 then max = floor(snap(max / unit)) * unit end
  res.max, res.limited_by = max, limited_by
  -- Without rules the CRM judges amounts (a wallet: money): no multiple check.
  local short = base and not base.allowed and balance < min and base.reason or nil
  local allowed, points, reason = engine.verdict(refusal, short, min, max, limited_by, requested, base and step or nil)
  res.allowed, res.points, res.reason = allowed, points, reason
  res.value = _M.money(points * rate)
  return res
end

-- A money total a share can be taken of: 0 or more and finite (never NaN or inf).
local function payable(x)
  if x >= 0 and x < math.huge then return x end
  return nil
end

--- The money total a redemption pays for: cart.total, else the cart's lines + shipping + tax,
-- or a plain number. nil when there is none (or it is not a finite amount).
function _M.total_of(cart)
  if type(cart) == "number" then return payable(cart) end
  if type(cart) ~= "table" then return nil end
  if type(cart.total) == "number" then return payable(cart.total) end
  if type(cart.lines) ~= "table" then return nil end
  local t = 0
  for _, l in ipairs(cart.lines) do
    if type(l) ~= "table" then return nil end
    local a = tonumber(l.amount) or (tonumber(l.price) or 0) * (tonumber(l.qty) or 1)
    t = t + a - (tonumber(l.discount) or 0)
  end
  t = t + (tonumber(cart.shipping) or 0) + (tonumber(cart.tax) or 0)
  if t ~= t or t == math.huge or t == -math.huge then return nil end
  return t
end

return _M

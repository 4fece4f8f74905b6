-- The Capillary sandbox's loyalty engine: earning, returns, redemption limits, tiers and the points
-- ledger.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.capillary.store")

local _M = {}

local floor, ceil = math.floor, math.ceil

--- Rounds x per the program's rounding mode ("floor" | "round" | "ceil").
function _M.round(cfg, x)
  local mode = cfg.program.rounding or "floor"
  if mode == "ceil" then return ceil(x - 1e-9) end
  if mode == "round" then return floor(x + 0.5) end
  return floor(x + 1e-9)
end

--- The highest tier whose threshold lifetime_purchases reaches.
function _M.tier_for(cfg, lifetime_purchases)
  local best
  for _, t in ipairs(cfg.program.tiers) do
    if (t.min_lifetime_purchases or 0) <= lifetime_purchases
      and (not best or (t.min_lifetime_purchases or 0) >= (best.min_lifetime_purchases or 0)) then
      best = t
    end
  end
  return best or cfg.program.tiers[1]
end

function _M.tier_named(cfg, name)
  for _, t in ipairs(cfg.program.tiers) do
    if t.name == name then return t end
  end
  return cfg.program.tiers[1]
end

--- The tier after `current` (by serial), or nil at the top.
function _M.next_tier(cfg, current)
  local cur = _M.tier_named(cfg, current)
  local nxt
  for _, t in ipairs(cfg.program.tiers) do
    if (t.serial or 0) > (cur.serial or 0) and (not nxt or t.serial < nxt.serial) then nxt = t end
  end
  return nxt
end

--- Points a regular bill of `amount` earns for customer c (tier at billing time).
function _M.points_for(cfg, c, amount)
  if amount <= 0 then return 0 end
  local tier = _M.tier_named(cfg, c.slab)
  return _M.round(cfg, amount * cfg.program.points_per_currency_unit * (tier.multiplier or 1))
end

local function post_ledger(c, kind, points, ref)
  local n = store.next_seq("ledger")
  store.set_json("ledger:" .. n, {
    id = n, customer_id = c.id, type = kind, points = points, balance = c.loyalty_points,
    ref = ref, at = cstore.now_string(),
  })
end

--- Books a regular bill: balances, tier upgrade, ledger. Returns awarded points.
function _M.book_regular(cfg, c, amount, bill_number)
  local points = _M.points_for(cfg, c, amount)
  c.loyalty_points = c.loyalty_points + points
  c.lifetime_points = c.lifetime_points + points
  c.lifetime_purchases = c.lifetime_purchases + math.max(amount, 0)
  local tier = _M.tier_for(cfg, c.lifetime_purchases)
  if (tier.serial or 0) > (_M.tier_named(cfg, c.slab).serial or 0) then c.slab = tier.name end
  if points ~= 0 then post_ledger(c, "earn", points, bill_number) end
  return points
end

-- A returned line's bill line: by serial, else by item code.
local function bill_line(original, l)
  for i, o in ipairs(original.line_items or {}) do
    if (l.serial and tostring(l.serial) == tostring(o.serial))
      or (not l.serial and l.item_code and l.item_code == o.item_code) then
      return o, i
    end
  end
end

--- Checks a return against what remains of `original`: nil, or {code, message} (documented codes).
function _M.return_error(original, return_type, amount, lines, inferred)
  local returned = original.returned_qty or {}
  local any = (original.amount_returned or 0) > 0 or next(returned) ~= nil
  if return_type == "FULL" then
    if original.fully_returned then return inferred.V11_ALREADY_RETURNED end
    if any then return inferred.V11_FULL_AFTER_PARTIAL end
    return nil
  end
  if original.fully_returned then return inferred.V11_ALREADY_RETURNED end
  local kinds = original.return_kinds or {}
  if return_type == "AMOUNT" and kinds.LINE_ITEM then return inferred.V11_AMOUNT_AFTER_LINES end
  if return_type == "LINE_ITEM" and kinds.AMOUNT then return inferred.V11_LINES_AFTER_AMOUNT end
  if return_type == "AMOUNT" then
    local left = original.amount - (original.amount_returned or 0)
    if (amount or 0) > left + 1e-9 then return inferred.V11_RETURN_AMOUNT end
    return nil
  end
  if #(lines or {}) == 0 then return { code = 679, message = "Line-item(s) to be returned is not specified." } end
  local asked = {}
  for _, l in ipairs(lines) do
    local o, i = bill_line(original, l)
    if not o then return inferred.V11_NO_MATCHING_LINE end
    asked[i] = (asked[i] or 0) + (tonumber(l.qty) or tonumber(o.qty) or 1)
    if asked[i] > (tonumber(o.qty) or 1) - (returned[tostring(i)] or 0) + 1e-9 then return inferred.V11_RETURN_QTY end
  end
  return nil
end

--- Points to take back for a return of `original` (a stored bill).
-- FULL: everything not yet reversed; AMOUNT: amount's share of the bill amount; LINE_ITEM: the
-- returned lines' share of the bill's lines (both sides line amounts: the points a bill earns
-- follow its lines, whatever part of it was paid with points), capped at what is left.
function _M.return_points(cfg, original, return_type, amount, lines)
  local remaining = original.points_awarded - (original.points_reversed or 0)
  if original.amount <= 0 then return 0, 0 end
  local returned_amount
  if return_type == "FULL" then
    return math.max(remaining, 0), original.amount - (original.amount_returned or 0)
  elseif return_type == "AMOUNT" then
    returned_amount = math.min(amount or 0, original.amount)
    local points = _M.round(cfg, original.points_awarded * returned_amount / original.amount)
    return math.max(math.min(points, remaining), 0), returned_amount
  end
  returned_amount = 0
  local base = 0
  for _, o in ipairs(original.line_items or {}) do base = base + (tonumber(o.amount) or 0) end
  original.returned_qty = original.returned_qty or {}
  for _, l in ipairs(lines or {}) do
    local o, i = bill_line(original, l)
    if o then
      local qty = tonumber(l.qty) or tonumber(o.qty) or 1
      local per = (tonumber(o.amount) or 0) / (tonumber(o.qty) or 1)
      local a = tonumber(l.amount)
      if not a or a <= 0 then a = per * qty end -- a line posted without its amount: its share of the bill line
      returned_amount = returned_amount + math.min(a, o.amount)
      original.returned_qty[tostring(i)] = (original.returned_qty[tostring(i)] or 0) + qty
    end
  end
  if base <= 0 then return 0, returned_amount end
  local points = _M.round(cfg, original.points_awarded * returned_amount / base)
  return math.max(math.min(points, remaining), 0), returned_amount
end

--- Books a return against customer c. Returns nothing; mutates c and original.
function _M.book_return(c, original, points, returned_amount, ref)
  c.loyalty_points = c.loyalty_points - points
  c.lifetime_points = c.lifetime_points - points
  c.returned = (c.returned or 0) + points
  c.lifetime_purchases = math.max(c.lifetime_purchases - returned_amount, 0)
  original.points_reversed = (original.points_reversed or 0) + points
  original.amount_returned = (original.amount_returned or 0) + returned_amount
  if points ~= 0 then post_ledger(c, "return", -points, ref) end
end

--- Checks a redemption of `points` against the program limits and c's balance.
-- Returns nil when allowed, or {code, message} with the documented code.
function _M.redemption_error(cfg, c, points)
  if type(points) ~= "number" or points <= 0 then
    return { code = 801, message = "Invalid points: points to redeem must be greater than zero" }
  end
  if points * 1000 ~= floor(points * 1000) then
    return { code = 878, message = "Points cannot have more than 3 decimal places" }
  end
  local r = cfg.program.redemption or {}
  if r.min_points and points < r.min_points then
    return { code = 821, message = "Points to redeem are below the minimum of " .. r.min_points }
  end
  if r.max_points_per_transaction and points > r.max_points_per_transaction then
    return { code = 819, message = "Points to redeem exceed the maximum of " .. r.max_points_per_transaction }
  end
  if r.multiple_of and r.multiple_of > 0 and points % r.multiple_of ~= 0 then
    return { code = 807, message = "Points to redeem must be a multiple of " .. r.multiple_of }
  end
  if points > c.loyalty_points then
    return { code = 803, message = "Insufficient points: current balance is " .. c.loyalty_points }
  end
  return nil
end

function _M.book_redemption(c, points, ref)
  c.loyalty_points = c.loyalty_points - points
  c.redeemed = (c.redeemed or 0) + points
  post_ledger(c, "redeem", -points, ref)
end

function _M.book_reversal(c, points, ref)
  c.loyalty_points = c.loyalty_points + points
  c.redeemed = (c.redeemed or 0) - points
  post_ledger(c, "reversal", points, ref)
end

--- The v1.1 points_summary entry (string-typed as in the documented samples).
function _M.points_summary_v11(cfg, c)
  local nxt = _M.next_tier(cfg, c.slab)
  local tier = _M.tier_named(cfg, c.slab)
  return {
    programId = tostring(cfg.program.id), redeemed = tostring(c.redeemed or 0),
    expired = tostring(c.expired or 0), returned = tostring(c.returned or 0), adjusted = tostring(c.adjusted or 0),
    lifetimePoints = tostring(c.lifetime_points), loyaltyPoints = tostring(c.loyalty_points),
    cumulativePurchases = tostring(c.lifetime_purchases), currentSlab = c.slab,
    nextSlab = nxt and nxt.name or "", nextSlabSerialNumber = nxt and tostring(nxt.serial) or "",
    nextSlabDescription = nxt and nxt.name or "", slabSNo = tostring(tier.serial or 1),
    slabExpiryDate = cfg.program.tier_expiry_date or "", totalPoints = tostring(c.loyalty_points),
  }
end

--- The v2 pointsSummary (numbers).
function _M.points_summary_v2(cfg, c)
  local nxt = _M.next_tier(cfg, c.slab)
  local tier = _M.tier_named(cfg, c.slab)
  return {
    adjusted = c.adjusted or 0, cumulativePurchases = c.lifetime_purchases, currentSlab = c.slab,
    expired = c.expired or 0, lifetimePoints = c.lifetime_points, loyaltyId = c.id,
    loyaltyPoints = c.loyalty_points, nextSlab = nxt and nxt.name or "",
    nextSlabDescription = nxt and nxt.name or "", nextSlabSerialNumber = nxt and nxt.serial or -1,
    redeemed = c.redeemed or 0, returned = c.returned or 0,
    slabExpiryDate = cfg.program.tier_expiry_date or "", slabSNo = tier.serial or 1,
  }
end

_M.array = json.array

return _M

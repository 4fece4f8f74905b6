-- The returns ledger of one order: per bill line what was bought and what was already returned,
-- from the CRM's own records (transaction/get for the bill, customer/transactions for its
-- returns) plus the returns still waiting in the outbox. A return is planned against it before
-- any write: more than what remains is refused, a whole-order return after partial ones posts
-- what remains (the CRM refuses FULL then: 639), and the redemption's share is worked out.
local errors = require "loyalty.errors"

local _M = {}

local floor = math.floor

local function money(x) return floor(x * 100 + 0.5 + 1e-9) / 100 end

local function refused(code, message, fields)
  local e = { kind = "refused", code = code, message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return nil, errors.new(e)
end

local function list(v)
  if type(v) ~= "table" then return {} end
  if v[1] == nil and next(v) ~= nil then return { v } end
  return v
end

local function lines_of(t)
  return list(type(t) == "table" and type(t.line_items) == "table" and t.line_items.line_item)
end

--- Builds the ledger from the CRM's bill, its return rows and queued returns (transaction/add
-- payloads). -> ledger {lines = {{serial, sku, qty, amount, returned_qty, returned_amount}},
-- amount, lines_total, returned_amount, kinds = {FULL, AMOUNT, LINE_ITEM}, full, points_awarded,
-- points_returned}
function _M.build(bill, returns, queued)
  local L = { lines = {}, amount = tonumber(bill.amount) or 0, lines_total = 0, returned_amount = 0, kinds = {},
              points_returned = 0 }
  local pts = type(bill.points) == "table" and bill.points or {}
  L.points_awarded = tonumber(pts.awarded or pts.issued)
  for i, l in ipairs(lines_of(bill)) do
    if type(l) == "table" then
      local qty = tonumber(l.qty) or 1
      local amount = tonumber(l.amount) or (tonumber(l.rate) or 0) * qty
      L.lines[#L.lines + 1] = { serial = l.serial ~= nil and tostring(l.serial) or tostring(i), sku = l.item_code,
                                qty = qty, amount = amount, returned_qty = 0, returned_amount = 0 }
      L.lines_total = L.lines_total + amount
    end
  end
  if L.lines_total <= 0 then L.lines_total = L.amount end
  local function add(kind, amount, rlines, points)
    kind = tostring(kind or ""):upper()
    L.kinds[kind] = true
    L.points_returned = L.points_returned + (tonumber(points) or 0)
    if kind == "FULL" then
      L.full = true
      return
    end
    if kind == "AMOUNT" then
      L.returned_amount = L.returned_amount + (tonumber(amount) or 0)
      return
    end
    for _, rl in ipairs(rlines) do
      local line = type(rl) == "table" and _M.match(L, rl.serial, rl.item_code)
      if line then
        local q = tonumber(rl.qty) or line.qty
        line.returned_qty = line.returned_qty + q
        local a = tonumber(rl.amount) or line.amount * q / line.qty
        line.returned_amount = line.returned_amount + a
        L.returned_amount = L.returned_amount + a
      end
    end
  end
  for _, t in ipairs(returns or {}) do
    if type(t) == "table" then
      local p = type(t.points) == "table" and (t.points.returned or t.points.deducted) or t.points_deducted
      add(t.return_type, t.amount, lines_of(t), p)
    end
  end
  for _, t in ipairs(queued or {}) do add(t.return_type, t.amount, lines_of(t), nil) end
  return L
end

--- The bill line a returned line means: by serial, else by SKU (the first with some left).
function _M.match(L, serial, sku)
  if serial ~= nil then
    for _, l in ipairs(L.lines) do if l.serial == tostring(serial) then return l end end
    return nil
  end
  local first
  for _, l in ipairs(L.lines) do
    if sku ~= nil and l.sku == sku then
      first = first or l
      if l.returned_qty < l.qty then return l end
    end
  end
  return first
end

local function nothing_left(L)
  if L.full then return true end
  if #L.lines > 0 then
    for _, l in ipairs(L.lines) do if l.returned_qty < l.qty then return false end end
    return true
  end
  return L.returned_amount >= L.amount - 0.005
end

--- Plans a return: kind "FULL" | "LINE_ITEM" | "AMOUNT", want = {lines} | {amount}. -> plan
-- {kind, lines = {{serial, sku, qty, amount}}, amount, returned_before, returned_after, last} or
-- nil, err (refused, before any write: over_return, already_returned, no_such_line, mixed_return).
function _M.plan(L, kind, want)
  if nothing_left(L) then
    return refused("already_returned", "the whole order was already returned", { remaining = 0 })
  end
  local before = L.full and L.lines_total or L.returned_amount
  local plan = { returned_before = before }
  if kind == "FULL" then
    if not (L.kinds.AMOUNT or L.kinds.LINE_ITEM) then
      plan.kind, plan.amount, plan.last = "FULL", L.amount - L.returned_amount, true
    elseif L.kinds.AMOUNT then
      -- What remains, by amount (the CRM refuses FULL after a partial return: 639).
      plan.kind, plan.amount, plan.last = "AMOUNT", money(L.amount - L.returned_amount), true
    else
      plan.kind, plan.lines, plan.amount, plan.last = "LINE_ITEM", {}, 0, true
      for _, l in ipairs(L.lines) do
        local q = l.qty - l.returned_qty
        if q > 0 then
          local a = money(l.amount - l.returned_amount)
          plan.lines[#plan.lines + 1] = { serial = l.serial, sku = l.sku, qty = q, amount = a }
          plan.amount = plan.amount + a
        end
      end
    end
  elseif kind == "AMOUNT" then
    if L.kinds.LINE_ITEM then
      return refused("mixed_return", "this order was returned by lines; return the rest by lines (the CRM " ..
                     "refuses AMOUNT after LINE_ITEM: 635)")
    end
    local left = money(L.amount - L.returned_amount)
    local a = tonumber(want.amount) or 0
    if a <= 0 then return refused("bad_return", "a return amount must be above 0") end
    if a > left + 0.005 then
      return refused("over_return", string.format("%.2f is more than the %.2f left to return on this order", a, left),
                     { remaining_amount = left, requested_amount = a })
    end
    plan.kind, plan.amount, plan.last = "AMOUNT", a, a >= left - 0.005
  else
    if L.kinds.AMOUNT then
      return refused("mixed_return", "this order was returned by amount; return the rest by amount (the CRM " ..
                     "refuses LINE_ITEM after AMOUNT: 632)")
    end
    local asked = {}
    plan.kind, plan.lines, plan.amount = "LINE_ITEM", {}, 0
    for _, r in ipairs(want.lines or {}) do
      if type(r) ~= "table" then return refused("bad_return", "each returned line must be a table") end
      local line = _M.match(L, r.serial, r.sku)
      if not line then
        return refused("no_such_line", "order line " .. tostring(r.serial or r.sku) .. " is not on this order",
                       { sku = r.sku, serial = r.serial })
      end
      local q = tonumber(r.qty) or 1
      if q <= 0 then return refused("bad_return", "a returned quantity must be above 0", { sku = line.sku }) end
      local left = line.qty - line.returned_qty - (asked[line] or 0)
      if q > left + 1e-9 then
        return refused("over_return", string.format("%s: %s returned of %s bought; %s more cannot be returned",
                       tostring(line.sku), tostring(line.returned_qty), tostring(line.qty), tostring(q)),
                       { sku = line.sku, serial = line.serial, remaining = left, requested = q })
      end
      asked[line] = (asked[line] or 0) + q
      local a = money(line.amount * q / line.qty)
      plan.lines[#plan.lines + 1] = { serial = line.serial, sku = line.sku, qty = q, amount = a }
      plan.amount = plan.amount + a
    end
    if #plan.lines == 0 then return refused("bad_return", "no lines to return") end
    local all = true
    for _, l in ipairs(L.lines) do if l.returned_qty + (asked[l] or 0) < l.qty then all = false end end
    plan.last = all
  end
  plan.returned_after = before + plan.amount
  return plan
end

--- The redemption points this return gives back: in proportion to the money returned, as a
-- running total so that the parts add up to exactly what was redeemed once all is returned.
function _M.reversal_points(L, plan, redeemed)
  if not redeemed or redeemed <= 0 then return 0 end
  if not L then return plan.kind == "FULL" and redeemed or 0 end
  -- Amount returns count the money paid (the bill's amount); line returns count line amounts.
  local total = (plan.kind ~= "AMOUNT" and L.lines_total > 0) and L.lines_total or L.amount
  if total <= 0 then return 0 end
  local prior = floor(redeemed * math.min(plan.returned_before / total, 1) + 1e-9)
  if plan.last then return redeemed - prior end
  local after = floor(redeemed * math.min(plan.returned_after / total, 1) + 1e-9)
  return math.max(after - prior, 0)
end

return _M

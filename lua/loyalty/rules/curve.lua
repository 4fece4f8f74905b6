-- Earn and the most points payable by cart size, per tier: the table `rules curve` prints and the data its chart
-- draws. Each cart is one line of the given category (none: the base rate) with an unlimited balance, so the
-- figures are what the rules allow, not what one customer has.
local _M = {}

local num = require("loyalty.rules.engine").num
local names = require("loyalty.rules.names")

local format, concat = string.format, table.concat

_M.DEFAULT_SIZES = { 100, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000 }

-- The tiers to draw: the program's tier_names, else every tier the rules name; always also "no tier".
function _M.tiers(rs)
  local p = rs.settings["program.lua"]
  local list, seen = {}, {}
  local function add(t)
    t = names.tier(t)
    if type(t) == "string" and not seen[t] then seen[t] = true; list[#list + 1] = t end
  end
  if p and p.tier_names then
    for _, t in ipairs(p.tier_names) do add(t) end
  else
    local found = {}
    for k in pairs((rs.settings["earn.lua"] or {}).tier_multipliers or {}) do found[#found + 1] = k end
    for k in pairs((rs.settings["redemption.lua"] or {}).tiers or {}) do found[#found + 1] = k end
    table.sort(found)
    for _, t in ipairs(found) do add(t) end
  end
  list[#list + 1] = false  -- no tier
  return list
end

--[[ args: { sizes = {...}, category = name or nil, sku = name or nil, tiers = list or nil }.
Returns { sizes, tiers = {name or false}, rows = { [tier_index] = { {size, earn, max, value, limited_by}... } } }
or nil, err. ]]
function _M.compute(rs, args)
  args = args or {}
  local sizes = args.sizes or _M.DEFAULT_SIZES
  local tiers = args.tiers or _M.tiers(rs)
  local out = { sizes = sizes, tiers = tiers, rows = {}, category = args.category, sku = args.sku }
  for ti, tier in ipairs(tiers) do
    local rows = {}
    for si, size in ipairs(sizes) do
      local cart = { currency = rs.currency, lines = { { sku = args.sku or "CURVE", qty = 1, price = size,
        categories = args.category and { args.category } or {} } } }
      local customer = { tier = tier or nil, points = 1e12 }
      local row = { size = size }
      if rs.compiled.earn then
        local e, err = rs:earn(customer, cart)
        if not e then return nil, err end
        row.earn = e.points
      end
      if rs.compiled.redemption then
        local r, err = rs:redemption(customer, cart)
        if not r then return nil, err end
        row.max, row.value, row.limited_by = r.max, r.max * r.point_value, r.limited_by
      end
      rows[si] = row
    end
    out.rows[ti] = rows
  end
  return out
end

function _M.tier_label(t) return t or "no tier" end

-- The table, one row per cart size; two columns per tier: points earned, most points payable.
function _M.text(rs, c)
  local out = {}
  local what = c.sku and ("SKU " .. c.sku) or c.category and ("category " .. c.category) or "no category (base rate)"
  out[#out + 1] = format("Rule set %s: points earned and the most points payable, by cart size", rs.hash)
  out[#out + 1] = format("(each cart is one line of %s; the balance is unlimited, so only the rules limit)", what)
  out[#out + 1] = ""
  local head1, head2 = { format("%12s", "cart " .. rs.currency) }, { format("%12s", "") }
  for _, t in ipairs(c.tiers) do
    head1[#head1 + 1] = format("%-21s", _M.tier_label(t))
    head2[#head2 + 1] = format("%9s %11s", "earn", "max payable")
  end
  out[#out + 1] = concat(head1, "  ")
  out[#out + 1] = concat(head2, "  ")
  for si, size in ipairs(c.sizes) do
    local cells = { format("%12s", format("%.2f", size)) }
    for ti in ipairs(c.tiers) do
      local r = c.rows[ti][si]
      cells[#cells + 1] = format("%9s %11s", r.earn and num(r.earn) or "-", r.max and num(r.max) or "-")
    end
    out[#out + 1] = concat(cells, "  ")
  end
  if rs.compiled.redemption then
    out[#out + 1] = ""
    out[#out + 1] = format("1 point = %s %s; what limits the maximum at the largest cart:", num(
      rs.compiled.redemption.point_value), rs.currency)
    for ti, t in ipairs(c.tiers) do
      local last = c.rows[ti][#c.sizes]
      out[#out + 1] = format("  %-10s %s", _M.tier_label(t), last and last.limited_by or "-")
    end
  end
  return concat(out, "\n") .. "\n"
end

return _M

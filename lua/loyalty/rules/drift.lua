-- Drift between the rules' estimate and what the CRM awarded, over the order log: grouped by tier, category,
-- SKU and cart size, so the analyst sees which rule is off. Pure computation over the log: no CRM is called.
local _M = {}

local replay = require("loyalty.rules.replay")
local names = require("loyalty.rules.names")
local num = require("loyalty.rules.engine").num
local providers = require("loyalty.providers")

local format, concat, abs = string.format, table.concat, math.abs

local function clean(v)
  if type(v) == "userdata" then return nil end
  return v
end

-- Whether the log's provider awards money, not points (its storefront's AWARDS_MONEY); the
-- title of the first such provider seen, for the summary.
local money_titles = {}
local function awards_money(name)
  if type(name) ~= "string" then return false end
  local known = money_titles[name]
  if known ~= nil then return known ~= false end
  local p = providers.get(name)
  local sf = p and providers.part(p, "storefront")
  money_titles[name] = (sf and sf.AWARDS_MONEY) and p.title or false
  return money_titles[name] ~= false
end

local SIZE_BUCKETS = { { 1, 1, "1 line" }, { 2, 3, "2-3 lines" }, { 4, 6, "4-6 lines" }, { 7, 10, "7-10 lines" },
  { 11, math.huge, "11+ lines" } }
local function size_bucket(n)
  for _, b in ipairs(SIZE_BUCKETS) do if n >= b[1] and n <= b[2] then return b[3] end end
  return "0 lines"
end

local function group(map, key)
  local g = map[key]
  if not g then
    g = { orders = 0, drifting = 0, estimate = 0, awarded = 0 }
    map[key] = g
  end
  return g
end

local function count(g, est, awarded, drifting)
  g.orders = g.orders + 1
  g.estimate, g.awarded = g.estimate + est, g.awarded + awarded
  if drifting then g.drifting = g.drifting + 1 end
end

--[[ args: { orders = path, rules = ruleset or nil (re-estimate with it instead of the logged estimate),
tolerance = points (0), progress = fn }. Returns nil, message or
{ orders, compared, drifting, not_awarded, no_estimate, skipped = {{line, why}}, estimate, awarded,
  by = { tier = {[k] = group}, category = {...}, sku = {...}, size = {...}, rules_hash = {...} },
  worst = {{id, line, estimate, awarded}} } with group = { orders, drifting, estimate, awarded } ]]
function _M.run(args)
  local tol = args.tolerance or 0
  local rs = args.rules
  local s = { orders = 0, compared = 0, drifting = 0, not_awarded = 0, no_estimate = 0, failed = 0, skipped = {},
    in_money = 0,
    estimate = 0, awarded = 0, by = { tier = {}, category = {}, sku = {}, size = {}, rules_hash = {} }, worst = {} }
  local worst = s.worst
  local function on_record(rec, line_no)
    s.orders = s.orders + 1
    local awarded = tonumber(clean(rec.awarded))
    if awarded == nil then s.not_awarded = s.not_awarded + 1 return end
    local tier = clean(rec.tier)
    tier = type(tier) == "string" and names.tier(tier) or nil
    local est
    -- A provider that awards an amount of money: compare it with the estimate's value at the rules' point_value
    local in_money = awards_money(clean(rec.provider))
    if rs then
      local e = rs:earn({ tier = tier }, rec.cart)
      if not e then s.failed = s.failed + 1 return end
      est = e.points
      local pv = rs.compiled.redemption and rs.compiled.redemption.point_value
      if in_money and pv then est = math.floor(est * pv * 100 + 0.5) / 100 end
    else
      est = tonumber(clean(in_money and rec.estimate_value or rec.estimate)) or tonumber(clean(rec.estimate))
    end
    if in_money then
      s.in_money = s.in_money + 1
      s.money_provider = s.money_provider or money_titles[clean(rec.provider)]
    end
    if est == nil then s.no_estimate = s.no_estimate + 1 return end
    s.compared = s.compared + 1
    s.estimate, s.awarded = s.estimate + est, s.awarded + awarded
    local drifting = abs(est - awarded) > tol
    if drifting then s.drifting = s.drifting + 1 end
    count(group(s.by.tier, tier or "(no tier)"), est, awarded, drifting)
    count(group(s.by.rules_hash, tostring(clean(rec.rules_hash) or "(none)")), est, awarded, drifting)
    local lines = rec.cart.lines
    count(group(s.by.size, size_bucket(#lines)), est, awarded, drifting)
    -- an order counts once in every category and SKU it contains
    local cats, skus = {}, {}
    for _, l in ipairs(lines) do
      if type(l) == "table" then
        local c = clean(l.categories) or clean(l.category)
        if type(c) == "string" then c = { c } end
        if type(c) ~= "table" or #c == 0 then cats["(no category)"] = true
        else for _, n in ipairs(c) do cats[tostring(n)] = true end end
        if clean(l.sku) ~= nil then skus[tostring(l.sku)] = true end
      end
    end
    for k in pairs(cats) do count(group(s.by.category, k), est, awarded, drifting) end
    for k in pairs(skus) do count(group(s.by.sku, k), est, awarded, drifting) end
    if drifting then
      local entry = { id = tostring(clean(rec.order_id) or ("line " .. line_no)), line = line_no, estimate = est,
        awarded = awarded, tier = tier }
      if #worst < 10 then worst[#worst + 1] = entry
      else
        local min_i = 1
        for i = 2, #worst do
          if abs(worst[i].estimate - worst[i].awarded) < abs(worst[min_i].estimate - worst[min_i].awarded) then
            min_i = i
          end
        end
        if abs(est - awarded) > abs(worst[min_i].estimate - worst[min_i].awarded) then worst[min_i] = entry end
      end
    end
  end
  local n, err = replay.read_log(args.orders, on_record, function(line_no, why)
    s.skipped[#s.skipped + 1] = { line = line_no, why = why }
  end, { progress = args.progress })
  if not n then return nil, err end
  table.sort(worst, function(a, b) return abs(a.estimate - a.awarded) > abs(b.estimate - b.awarded) end)
  return s
end

local function ratio(g)
  if g.estimate == 0 then return g.awarded == 0 and "x1" or "x?" end
  return format("x%.2f", g.awarded / g.estimate)
end

local function print_groups(w, title, map, limit)
  local keys = {}
  for k, g in pairs(map) do if g.drifting > 0 then keys[#keys + 1] = k end end
  table.sort(keys, function(a, b)
    local da, db = abs(map[a].awarded - map[a].estimate), abs(map[b].awarded - map[b].estimate)
    if da ~= db then return da > db end
    return a < b
  end)
  w("  by %s:", title)
  if #keys == 0 then w("    (no drift)") return end
  for i, k in ipairs(keys) do
    if i > limit then w("    ... and %d more", #keys - limit) break end
    local g = map[k]
    w("    %-18s %5d of %-5d orders drift; estimate %10s, CRM awarded %10s (%s, %s)", k, g.drifting, g.orders,
      num(g.estimate), num(g.awarded), (g.awarded - g.estimate >= 0 and "+" or "") .. num(g.awarded - g.estimate),
      ratio(g))
  end
end

function _M.text(s, args)
  local out = {}
  local function w(...) out[#out + 1] = format(...) end
  w("Drift between the rules' estimate%s and the CRM's award, over %d orders in %s",
    args.rules and (" (re-estimated with " .. args.rules.dir .. ", rule set " .. args.rules.hash .. ")") or
    " (as logged)", s.orders, args.orders)
  if s.not_awarded > 0 then w("%d order(s) have no CRM award yet (queued) and are left out", s.not_awarded) end
  if s.no_estimate > 0 then w("%d order(s) have no estimate (no rules when placed) and are left out", s.no_estimate) end
  if s.failed > 0 then w("%d order(s) could not be estimated with these rules and are left out", s.failed) end
  if s.in_money > 0 then
    w("%d %s order(s): the award is an amount, compared with the estimate at the rules' point_value",
      s.in_money, s.money_provider or "money-awarding")
  end
  w("Orders compared: %d; estimate differs from the award on %d (%s)", s.compared, s.drifting,
    s.compared > 0 and format("%.1f%%", s.drifting / s.compared * 100) or "-")
  w("Points: estimated %s, CRM awarded %s (%s)", num(s.estimate), num(s.awarded),
    s.estimate > 0 and format("the CRM pays x%.2f of the estimate", s.awarded / s.estimate) or "-")
  if s.drifting > 0 then
    print_groups(w, "tier", s.by.tier, 20)
    print_groups(w, "category", s.by.category, 20)
    print_groups(w, "SKU", s.by.sku, 15)
    print_groups(w, "cart size", s.by.size, 10)
    print_groups(w, "rule set in force", s.by.rules_hash, 10)
    w("  the orders that drift most:")
    for _, o in ipairs(s.worst) do
      w("    %s (log line %d, tier %s): estimate %s, CRM awarded %s", o.id, o.line, o.tier or "none", num(o.estimate),
        num(o.awarded))
    end
    w("  `loyalty rules explain DIR CART --crm SETTINGS --customer ID` shows the CRM's own answer for one cart " ..
      "(where its provider documents a dry run)")
  end
  if #s.skipped > 0 then
    w("Skipped log lines:")
    for i, k in ipairs(s.skipped) do
      if i > 50 then w("  ... and %d more", #s.skipped - 50) break end
      w("  line %d: %s", k.line, k.why)
    end
  end
  return concat(out, "\n") .. "\n"
end

return _M

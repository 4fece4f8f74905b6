-- Replay of logged orders (loyalty.program.order_log) under a proposed rule set, against the current one or
-- against what the log recorded. Pure computation over the log: it never calls a CRM.
local _M = {}

local num = require("loyalty.rules.engine").num
local money = require("loyalty.rules.engine").money
local names = require("loyalty.rules.names")

local format, concat, abs = string.format, table.concat, math.abs

local HUGE_BALANCE = 1e12  -- "the most the rules let anyone redeem": the balance is not in the log

--- Reads a JSON-lines order log. on_record(rec, line_no) for each order; on_skip(line_no, why) for lines that
--- are truncated, not JSON or not an order record. opts.progress(bytes_read, bytes_total) every few thousand.
--- Returns lines read, or nil, message when the file cannot be opened.
function _M.read_log(path, on_record, on_skip, opts)
  opts = opts or {}
  local cjson = require("cjson.safe")
  local f, err = io.open(path, "rb")
  if not f then return nil, "cannot read the order log " .. path .. ": " .. tostring(err) end
  local total = f:seek("end") or 0
  f:seek("set", 0)
  local n, done = 0, 0
  local progress = opts.progress
  for line in f:lines() do
    n = n + 1
    done = done + #line + 1
    if line:find("%S") then
      local rec = cjson.decode(line)
      if type(rec) ~= "table" then
        on_skip(n, line:sub(-1) ~= "}" and "not a whole JSON record (truncated?)" or "not JSON")
      elseif type(rec.cart) ~= "table" or type(rec.cart.lines) ~= "table" then
        on_skip(n, "not an order record (it has no cart with lines)")
      elseif rec.v ~= nil and rec.v ~= 1 then
        on_skip(n, "an order record of version " .. tostring(rec.v) .. ", which this version cannot read")
      else
        on_record(rec, n)
      end
    end
    if progress and n % 5000 == 0 then progress(done, total) end
  end
  f:close()
  if progress then progress(total, total) end
  return n
end

-- JSON null in a decoded record means "absent".
local function clean(v)
  if type(v) == "userdata" then return nil end
  return v
end

local function customer_of(rec)
  local tier = clean(rec.tier)
  return { tier = type(tier) == "string" and names.tier(tier) or nil, points = HUGE_BALANCE }
end

-- The category a line's points count under: the one whose multiplier applied, else its first category.
local function line_category(t)
  local cat = t.rule and t.rule:match("^category (.+)$")
  if cat then return cat end
  if t.categories and t.categories[1] then return t.categories[1] end
  return "(no category)"
end

-- Adds an order's points to its lines' categories; a cap or minimum is shared out over the lines, so the
-- categories add up to the points issued.
local function add_categories(map, e, field)
  local sum = 0
  for _, t in ipairs(e.lines) do sum = sum + (t.points or 0) end
  local factor = sum > 0 and e.points / sum or 0
  for _, t in ipairs(e.lines) do
    if not t.pseudo or (t.points or 0) > 0 then
      local key = t.pseudo and t.sku or line_category(t)
      local row = map[key]
      if not row then row = { old = 0, new = 0 }; map[key] = row end
      row[field] = row[field] + (t.points or 0) * factor
    end
  end
end

local function add(map, key, field, v)
  local row = map[key]
  if not row then row = { old = 0, new = 0 }; map[key] = row end
  row[field] = row[field] + v
end

-- Per-line arithmetic of one earn result, in the words `rules explain` uses.
function _M.line_math(rs, t)
  local e = rs.compiled.earn
  if t.excluded then return t.excluded .. " -> 0" end
  local f = format("%s / %s x %s x %s", format("%.2f", t.base), num(e.for_every), num(e.points_earned),
    num(t.multiplier))
  if t.tier_multiplier ~= 1 then f = f .. " x " .. num(t.tier_multiplier) end
  if t.bonus_multiplier ~= 1 then f = f .. " x " .. num(t.bonus_multiplier) end
  return format("%s (%s) = %s -> %s", t.rule, f, num(t.raw), num(t.points))
end

--[[ Replays the log. args: { new = ruleset, old = ruleset or nil (then the logged estimates), orders = path,
top = 10, progress = fn(done, total) }. Returns a summary or nil, message:
{ orders, changed, skipped = {{line, why}}, points = {old, new}, by_tier = {[tier] = {old, new}},
  by_category = {...}, liability = {old, new}, rate_missing, payable = {old, new, old_value, new_value},
  failing = {{order_id, line, error}}, limits = {{order_id, line, what}}, top = {{rec, old, new, delta}}, hashes } ]]
function _M.run(args)
  local new_rs, old_rs = args.new, args.old
  local top_n = args.top or 10
  local s = { orders = 0, changed = 0, skipped = {}, points = { old = 0, new = 0 }, by_tier = {}, by_category = {},
    liability = { old = 0, new = 0 }, rate_missing = 0, payable = { old = 0, new = 0, old_value = 0, new_value = 0 },
    failing = {}, limits = {}, top = {}, hashes = {}, without_estimate = 0 }
  local fallback_rate = new_rs.compiled.redemption and new_rs.compiled.redemption.point_value
  local top = s.top
  local function consider_top(entry)
    if #top < top_n then top[#top + 1] = entry
    else
      local min_i, min_d = 1, abs(top[1].delta)
      for i = 2, #top do if abs(top[i].delta) < min_d then min_i, min_d = i, abs(top[i].delta) end end
      if abs(entry.delta) <= min_d then return end
      top[min_i] = entry
    end
  end
  local function on_record(rec, line_no)
    s.orders = s.orders + 1
    local hash = clean(rec.rules_hash) or "(none)"
    s.hashes[hash] = (s.hashes[hash] or 0) + 1
    local customer = customer_of(rec)
    local cart = rec.cart
    local new_e, new_err = new_rs:earn(customer, cart)
    local old_points, old_e, old_err
    if old_rs then
      old_e, old_err = old_rs:earn(customer, cart)
      old_points = old_e and old_e.points
    else
      old_points = tonumber(clean(rec.estimate))
      if old_points == nil then s.without_estimate = s.without_estimate + 1 end
    end
    local id = tostring(clean(rec.order_id) or ("line " .. line_no))
    if not new_e then  -- not in the totals: the analyst sees it listed instead
      s.failing[#s.failing + 1] = { order_id = id, line = line_no, error = tostring(new_err and new_err.message) ..
        (old_err and " (it fails under the current rules too)" or "") }
      return
    end
    old_points = old_points or 0
    local new_points = new_e.points
    local tier = customer.tier or "(no tier)"
    s.points.old, s.points.new = s.points.old + old_points, s.points.new + new_points
    add(s.by_tier, tier, "old", old_points)
    add(s.by_tier, tier, "new", new_points)
    add_categories(s.by_category, new_e, "new")
    if old_e then add_categories(s.by_category, old_e, "old") end
    local rate = tonumber(clean(rec.point_value))
    if not rate then rate = fallback_rate or 0; s.rate_missing = s.rate_missing + 1 end
    s.liability.old = s.liability.old + old_points * rate
    s.liability.new = s.liability.new + new_points * rate
    -- the most the rules let anyone pay with points on this order
    local new_r = new_rs.compiled.redemption and new_rs:redemption(customer, cart)
    local old_r = old_rs and old_rs.compiled.redemption and old_rs:redemption(customer, cart)
    if new_r then
      s.payable.new = s.payable.new + new_r.max
      s.payable.new_value = s.payable.new_value + new_r.max * (tonumber(clean(rec.point_value)) or new_r.point_value)
    end
    if old_r then
      s.payable.old = s.payable.old + old_r.max
      s.payable.old_value = s.payable.old_value + old_r.max * (tonumber(clean(rec.point_value)) or old_r.point_value)
    end
    local payable_changed = old_r and new_r and old_r.max ~= new_r.max
    -- against the log, "now" means the cap took away points the order earned before
    if new_e.capped and (old_e and not old_e.capped or not old_e and old_points > new_points) then
      s.limits[#s.limits + 1] = { order_id = id, line = line_no, what = format("now capped at %s points (%s before " ..
        "the cap)", num(new_e.points), num(new_e.before_cap)) }
    end
    if new_e.below_minimum and not (old_e and old_e.below_minimum) and old_points > 0 then
      s.limits[#s.limits + 1] = { order_id = id, line = line_no, what = format("now below minimum_order %s: earns " ..
        "nothing (was %s)", num(new_e.minimum_order), num(old_points)) }
    end
    if old_err then
      s.limits[#s.limits + 1] = { order_id = id, line = line_no, what = "failed under the current rules (" ..
        tostring(old_err.message) .. "), works now" }
    end
    if new_points ~= old_points or payable_changed then
      s.changed = s.changed + 1
      if new_points ~= old_points then
        consider_top({ rec = rec, line = line_no, id = id, old = old_points, new = new_points,
          delta = new_points - old_points })
      end
    end
  end
  local lines, err = _M.read_log(args.orders, on_record, function(line_no, why)
    s.skipped[#s.skipped + 1] = { line = line_no, why = why }
  end, { progress = args.progress })
  if not lines then return nil, err end
  table.sort(top, function(a, b)
    if abs(a.delta) ~= abs(b.delta) then return abs(a.delta) > abs(b.delta) end
    return a.line < b.line
  end)
  return s
end

local function signed(x, digits)
  local text = digits and format("%." .. digits .. "f", x) or num(x)
  if x > 0 then return "+" .. text end
  return text
end

local function percent(old, new)
  if old == 0 then return "" end
  return format(", %s%%", signed(math.floor((new - old) / old * 1000 + 0.5) / 10))
end

local function rows(map)
  local keys = {}
  for k in pairs(map) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local da, db = abs(map[a].new - map[a].old), abs(map[b].new - map[b].old)
    if da ~= db then return da > db end
    return a < b
  end)
  return keys
end

--- The report an analyst reads: summary s from run, with args as given to run (labels: new_label, old_label).
function _M.text(s, args)
  local out = {}
  local function w(...) out[#out + 1] = format(...) end
  local new_rs, old_rs = args.new, args.old
  local currency = new_rs.currency
  w("Replayed %d orders from %s under %s (rule set %s) against %s", s.orders, args.orders,
    args.new_label or new_rs.dir, new_rs.hash,
    old_rs and ((args.old_label or old_rs.dir) .. " (rule set " .. old_rs.hash .. ")") or "the estimates in the log")
  if #s.skipped > 0 then w("%d log line(s) skipped (listed at the end)", #s.skipped) end
  if not old_rs and s.without_estimate > 0 then
    w("%d order(s) have no logged estimate; counted as 0 points before", s.without_estimate)
  end
  w("")
  w("Orders changed: %d of %d%s", s.changed, s.orders, s.orders > 0 and format(" (%.1f%%)", s.changed / s.orders * 100)
    or "")
  w("Points issued: %s -> %s (%s%s)", num(s.points.old), num(s.points.new), signed(s.points.new - s.points.old),
    percent(s.points.old, s.points.new))
  w("  by tier:")
  for _, k in ipairs(rows(s.by_tier)) do
    local r = s.by_tier[k]
    w("    %-16s %12s -> %-12s (%s)", k, num(r.old), num(r.new), signed(r.new - r.old))
  end
  if old_rs then
    w("  by category (the one whose multiplier applied, else the line's first; caps shared out over the lines):")
    for _, k in ipairs(rows(s.by_category)) do
      local r = s.by_category[k]
      local o, n = math.floor(r.old + 0.5), math.floor(r.new + 0.5)
      w("    %-16s %12s -> %-12s (%s)", k, num(o), num(n), signed(n - o))
    end
  else
    w("  by category (new rules only; the log holds the old estimate per order, not per line):")
    for _, k in ipairs(rows(s.by_category)) do w("    %-16s %12s", k, num(math.floor(s.by_category[k].new + 0.5))) end
  end
  w("Redeemable value of the points issued (the liability, at the CRM's point value): %s -> %s %s (%s)",
    format("%.2f", money(s.liability.old)), format("%.2f", money(s.liability.new)), currency,
    signed(money(s.liability.new - s.liability.old), 2))
  if s.rate_missing > 0 then
    w("  %d order(s) logged no CRM point value; valued at the rules' point_value", s.rate_missing)
  end
  if old_rs then
    w("Most points payable on these orders (rules' redemption limits): %s -> %s points (%s -> %s %s)",
      num(s.payable.old), num(s.payable.new), format("%.2f", money(s.payable.old_value)),
      format("%.2f", money(s.payable.new_value)), currency)
  elseif new_rs.compiled.redemption then
    w("Most points payable on these orders under the new rules: %s points (%s %s)", num(s.payable.new),
      format("%.2f", money(s.payable.new_value)), currency)
  end
  w("")
  w("Orders that now fail (not in the totals above): %d", #s.failing)
  for i, f in ipairs(s.failing) do
    if i > 20 then w("  ... and %d more", #s.failing - 20) break end
    w("  %s (log line %d): %s", f.order_id, f.line, f.error)
  end
  w("Orders that now trip a limit: %d", #s.limits)
  for i, l in ipairs(s.limits) do
    if i > 20 then w("  ... and %d more", #s.limits - 20) break end
    w("  %s (log line %d): %s", l.order_id, l.line, l.what)
  end
  if #s.top > 0 then
    w("")
    w("The %d orders that changed most:", #s.top)
    for _, t in ipairs(s.top) do
      local customer = customer_of(t.rec)
      w("  %s (log line %d, tier %s): %s -> %s points (%s)", t.id, t.line, customer.tier or "none", num(t.old),
        num(t.new), signed(t.delta))
      local ne = new_rs:earn(customer, t.rec.cart)
      local oe = old_rs and old_rs:earn(customer, t.rec.cart)
      for i, line in ipairs(ne.lines) do
        if not line.pseudo then
          local label = format("line %d %s", i, tostring(line.sku or "(no SKU)"))
          local before = oe and oe.lines[i] and _M.line_math(old_rs, oe.lines[i])
          local after = _M.line_math(new_rs, line)
          if before == after then
            w("    %s: %s (unchanged)", label, after)
          elseif before then
            w("    %s: %s  =>  %s", label, before, after)
          else
            w("    %s: %s", label, _M.line_math(new_rs, line))
          end
        end
      end
      if ne.capped then w("    capped at %s (was %s before the cap)", num(ne.points), num(ne.before_cap)) end
      if ne.below_minimum then w("    below minimum_order %s: nothing earned", num(ne.minimum_order)) end
    end
  end
  if #s.skipped > 0 then
    w("")
    w("Skipped log lines:")
    for i, k in ipairs(s.skipped) do
      if i > 50 then w("  ... and %d more", #s.skipped - 50) break end
      w("  line %d: %s", k.line, k.why)
    end
  end
  local hashes = {}
  for h, n in pairs(s.hashes) do hashes[#hashes + 1] = format("%s (%d)", h, n) end
  table.sort(hashes)
  if #hashes > 0 then w("Rule sets that estimated these orders when they were placed: %s", concat(hashes, ", ")) end
  return concat(out, "\n") .. "\n"
end

return _M

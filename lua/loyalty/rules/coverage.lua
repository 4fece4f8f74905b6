-- Coverage of a rule set by its fixtures: which rule words and tier/category/SKU entries each fixture exercised
-- (only what a fixture's expectations check counts), and which entries no fixture tests.
local _M = {}

local names = require("loyalty.rules.names")

local format = string.format

local function sorted_keys(t)
  local out = {}
  for k in pairs(t or {}) do if type(k) == "string" then out[#out + 1] = k end end
  table.sort(out)
  return out
end

local TIER_KEYS = { "min_points", "max_points", "multiple_of", "max_share" }

-- Every entry a fixture can exercise: { id, words, file, setting, key, sub } in file order.
function _M.entries(rs)
  local s, out = rs.settings, {}
  local function add(id, words, file, setting, key, sub)
    out[#out + 1] = { id = id, words = words, file = file, setting = setting, key = key, sub = sub }
  end
  local e = s["earn.lua"]
  if e then
    add("earn_rate", "the earn rate (points_earned per for_every)", "earn.lua", "points_earned")
    if e.minimum_order then add("minimum_order", "minimum_order (an order below it)", "earn.lua", "minimum_order") end
    if e.cap_per_order then add("cap_per_order", "cap_per_order (an order above it)", "earn.lua", "cap_per_order") end
    for _, n in ipairs(e.exclude_categories or {}) do
      add("exclude_category:" .. n, "excluded category " .. n, "earn.lua", "exclude_categories", n)
    end
    for _, n in ipairs(e.exclude_skus or {}) do add("exclude_sku:" .. n, "excluded SKU " .. n, "earn.lua",
      "exclude_skus", n) end
    for _, k in ipairs(sorted_keys(e.category_multipliers)) do
      add("category:" .. k, "category " .. k .. " x" .. tostring(e.category_multipliers[k]), "earn.lua",
        "category_multipliers", k)
    end
    for _, k in ipairs(sorted_keys(e.sku_multipliers)) do
      add("sku:" .. k, "SKU " .. k .. " x" .. tostring(e.sku_multipliers[k]), "earn.lua", "sku_multipliers", k)
    end
    for _, k in ipairs(sorted_keys(e.tier_multipliers)) do
      add("tier:" .. names.tier(k), "tier " .. names.tier(k) .. " multiplier x" .. tostring(e.tier_multipliers[k]),
        "earn.lua", "tier_multipliers", k)
    end
    if e.bonus then add("bonus", "bonus() giving a multiplier", "earn.lua", "bonus") end
    for _, k in ipairs({ "shipping", "tax" }) do  -- only when the rule set says so
      local v = e["exclude_" .. k]
      if v ~= nil then
        add("exclude_" .. k, "exclude_" .. k .. " = " .. tostring(v) .. " (an order with " .. k .. ")", "earn.lua",
          "exclude_" .. k)
      end
    end
  end
  local r = s["redemption.lua"]
  if r then
    add("point_value", "point_value (an allowed redemption)", "redemption.lua", "point_value")
    for _, k in ipairs(TIER_KEYS) do
      if r[k] ~= nil then add("limit:" .. k, k, "redemption.lua", k) end
    end
    for _, t in ipairs(sorted_keys(r.tiers)) do
      for _, k in ipairs(TIER_KEYS) do
        if r.tiers[t][k] ~= nil then
          add("tier_limit:" .. names.tier(t) .. ":" .. k, "tier " .. names.tier(t) .. " " .. k, "redemption.lua",
            "tiers", t, k)
        end
      end
    end
    for _, n in ipairs(r.refuse_categories or {}) do
      add("refuse_category:" .. n, "refused category " .. n, "redemption.lua", "refuse_categories", n)
    end
    for _, n in ipairs(r.refuse_skus or {}) do
      add("refuse_sku:" .. n, "refused SKU " .. n, "redemption.lua", "refuse_skus", n)
    end
    if r.refuse then add("refuse", "refuse() refusing", "redemption.lua", "refuse") end
  end
  local c = s["categories.lua"]
  if c then
    for _, k in ipairs(sorted_keys(c.attributes)) do
      add("attributes:" .. k, "attributes of category " .. k, "categories.lua", "attributes", k)
    end
    for _, k in ipairs(sorted_keys(c.sku_attributes)) do
      add("sku_attributes:" .. k, "attributes of SKU " .. k, "categories.lua", "sku_attributes", k)
    end
  end
  return out
end

-- Which limit words a redemption verdict turned on (general setting or the tier's own).
local function limit_id(r, tier, key)
  local t
  for k, o in pairs(r.tiers or {}) do if names.tier(k) == tier then t = o end end
  if t and t[key] ~= nil then return "tier_limit:" .. tier .. ":" .. key end
  return "limit:" .. key
end

-- The entry ids one fixture result exercised: { [id] = true }.
function _M.fired(rs, result)
  local ids = {}
  local s = rs.settings
  local e = result.earn
  -- below the minimum or at the cap the lines' rules do not change the points checked: they were not tested
  if e and s["earn.lua"] and not e.below_minimum and not e.capped then
    local earned_any = false
    for _, t in ipairs(e.lines or {}) do
      if t.pseudo then ids["exclude_" .. t.sku:sub(2, -2)] = true end
      if t.excluded then
        local cat = t.excluded:match("^category (.+) is excluded from earning$")
        local sku = t.excluded:match("^SKU (.+) is excluded from earning$")
        if cat then ids["exclude_category:" .. cat] = true end
        if sku then ids["exclude_sku:" .. sku] = true end
      elseif not t.pseudo then
        earned_any = true
        local cat = t.rule and t.rule:match("^category (.+)$")
        local sku = t.rule and t.rule:match("^SKU (.+)$")
        if cat then ids["category:" .. cat] = true end
        if sku then ids["sku:" .. sku] = true end
        if t.bonus_multiplier ~= 1 or t.bonus_reason then ids.bonus = true end
      end
    end
    if earned_any then
      ids.earn_rate = true
      local tm = s["earn.lua"].tier_multipliers
      if e.tier then
        for k in pairs(tm or {}) do if names.tier(k) == e.tier then ids["tier:" .. e.tier] = true end end
      end
    end
  end
  if e and e.below_minimum then ids.minimum_order = true end
  if e and e.capped then ids.cap_per_order = true end
  local r = result.redemption
  local rr = s["redemption.lua"]
  if r and rr then
    local tier = r.tier and names.tier(r.tier)
    if r.allowed and r.points > 0 then ids.point_value = true end
    local reason = r.reason or ""
    if r.refused then
      local cat = r.refused:match("^category (.+) cannot be paid with points$")
      local sku = r.refused:match("^SKU (.+) cannot be paid with points$")
      if cat and (rr.refuse_categories and #rr.refuse_categories > 0) then ids["refuse_category:" .. cat] = true
      elseif sku and (rr.refuse_skus and #rr.refuse_skus > 0) then ids["refuse_sku:" .. sku] = true
      elseif rr.refuse then ids.refuse = true end
    else
      local by = r.limited_by or ""
      if by:find("per-order maximum", 1, true) and r.max > 0 then ids[limit_id(rr, tier, "max_points")] = true end
      if by:find("of the order total", 1, true) then ids[limit_id(rr, tier, "max_share")] = true end
      if reason:find("are needed to redeem", 1, true) or reason:find("below the minimum", 1, true) then
        ids[limit_id(rr, tier, "min_points")] = true
      end
      local stepped = false
      for _, l in ipairs(r.limits or {}) do if l.name:find("^whole multiples of") then stepped = true end end
      if stepped or reason:find("is not a multiple of", 1, true) then ids[limit_id(rr, tier, "multiple_of")] = true end
    end
  end
  local c = s["categories.lua"]
  if c then
    for _, line in ipairs(result.attribute_lines or {}) do
      local cats = line.categories or line.category
      if type(cats) == "string" then cats = { cats } end
      for _, n in ipairs(type(cats) == "table" and cats or {}) do
        if c.attributes and c.attributes[n] then ids["attributes:" .. n] = true end
      end
      if line.sku ~= nil and c.sku_attributes and c.sku_attributes[tostring(line.sku)] then
        ids["sku_attributes:" .. tostring(line.sku)] = true
      end
    end
  end
  return ids
end

--[[ Coverage of a run_fixtures() result: { per_fixture = { {words...} per result }, untested = {entry...},
entries = {entry...}, tested = n }. Each entry: { id, words, file, line }. ]]
function _M.report(rs, res)
  local entries = _M.entries(rs)
  local line_of = names.locator(rs.sources or {})
  for _, en in ipairs(entries) do en.line = line_of(en.file, en.setting, en.key, en.sub) end
  local seen, per = {}, {}
  for i, r in ipairs(res.results) do
    local ids = _M.fired(rs, r)
    local words = {}
    for _, en in ipairs(entries) do
      if ids[en.id] then words[#words + 1] = en.words; seen[en.id] = true end
    end
    per[i] = words
  end
  local untested, tested = {}, 0
  for _, en in ipairs(entries) do
    if seen[en.id] then tested = tested + 1 else untested[#untested + 1] = en end
  end
  return { per_fixture = per, untested = untested, entries = entries, tested = tested }
end

-- The lines `rules test` prints at the end.
function _M.summary_lines(cov)
  local out = {}
  out[#out + 1] = format("coverage: %d of %d rule entries are exercised by a fixture", cov.tested, #cov.entries)
  for _, en in ipairs(cov.untested) do
    out[#out + 1] = format("  %s is never tested (%s%s)", en.words, en.file, en.line and (" line " .. en.line) or "")
  end
  return out
end

return _M

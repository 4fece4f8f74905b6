-- Capillary v1.1 replies, made regular in one place (capillary.md §3.2):
-- object-or-array children become arrays, "true"/"false" and numeric strings become
-- booleans/numbers where the reference documents them, and item_status is surfaced per item.
local _M = {}

-- container key -> child key whose value may be one object or an array of them.
local ARRAY_CHILD = {
  customers = "customer", transactions = "transaction", points_summaries = "points_summary",
  group_points_summaries = "group_points_summary", subscriptions = "subscription",
  side_effects = "effect", warnings = "warning", custom_fields = "field", extended_fields = "field",
  coupons = "coupon", line_items = "line_item", attributes = "attribute", payment_details = "payment",
}

-- Fields documented as string-or-number counts and balances (not ids or bill numbers).
local NUMERIC = {
  user_id = true, lifetime_points = true, loyalty_points = true, lifetime_purchases = true,
  points = true, points_redeemed = true, redeemed_value = true, redeemed_local_value = true,
  balance = true, awarded_points = true, total_points = true, points_deducted = true,
  points_balance = true, points_redeem_value = true, points_redeem_local_value = true,
  points_currency_ratio = true, redeemed = true, expired = true, returned = true, adjusted = true,
  lifetimePoints = true, loyaltyPoints = true, cumulativePurchases = true, totalPoints = true,
  programId = true, num_points = true, currency_value = true, coupon_value = true,
}

local BOOLEAN = { is_redeemable = true, is_absolute = true, case_value = true }

-- Fields of status / item_status tables.
local STATUS_NUMERIC = { code = true, total = true, success_count = true }
local STATUS_BOOLEAN = { success = true, status = true }

local tointeger = math.tointeger or function(n) return n end

local function to_number(v)
  if type(v) ~= "string" then return v end
  -- Only plain decimal numbers of at most 15 digits convert exactly.
  if #v > 0 and #v <= 16 and v:match("^%-?%d+%.?%d*$") then
    local n = tonumber(v)
    if n and n == math.floor(n) then return tointeger(n) or n end
    return n or v
  end
  return v
end
_M.to_number = to_number

local function to_boolean(v)
  if v == "true" then return true end
  if v == "false" then return false end
  return v
end

local function is_array(t)
  return t[1] ~= nil or next(t) == nil
end

local normalize

local function normalize_status(t)
  for k, v in pairs(t) do
    if STATUS_NUMERIC[k] then
      t[k] = to_number(v)
    elseif STATUS_BOOLEAN[k] then
      t[k] = to_boolean(v)
    elseif k == "warnings" and type(v) == "table" then
      local list = v.warning
      if list == nil then list = {} elseif type(list) ~= "table" then list = { list } end
      for i = 1, #list do list[i] = to_number(list[i]) end
      t[k] = list
    end
  end
  return t
end

function normalize(t)
  for k, v in pairs(t) do
    local tv = type(v)
    if tv == "table" then
      if k == "status" or k == "item_status" then
        normalize_status(v)
      else
        local child = ARRAY_CHILD[k]
        if child and not is_array(v) then
          local c = v[child]
          if c == nil or (type(c) == "table" and next(c) == nil) then
            v[child] = {}
          elseif type(c) ~= "table" or not is_array(c) then
            v[child] = { c }
          end
        end
        normalize(v)
      end
    elseif tv == "string" then
      if NUMERIC[k] then
        t[k] = to_number(v)
      elseif BOOLEAN[k] then
        t[k] = to_boolean(v)
      end
    end
  end
  return t
end
_M.normalize = normalize

--- Collects every table carrying an item_status, depth first, as
-- { success, code, message, warnings, item } records; or nil, field, value when an
-- item_status or its warnings have the wrong type.
-- Module-level (no closure per reply): returns field, value of the first wrong-typed item_status.
local function walk(t, depth, out)
  if depth > 6 then return end
  local st = t.item_status
  if st ~= nil and type(st) ~= "table" and type(st) ~= "userdata" then return "item_status", st end
  if type(st) == "table" then
    local ok = st.success
    if ok == nil then ok = st.status end
    local warnings = st.warnings
    if warnings == nil or type(warnings) == "userdata" then
      warnings = {}
    elseif type(warnings) ~= "table" then
      return "item_status.warnings", warnings
    end
    local code = st.code
    if type(code) ~= "number" and type(code) ~= "string" then code = nil end
    out[#out + 1] = {
      success = ok ~= false, code = code, message = type(st.message) == "string" and st.message or nil,
      warnings = warnings, item = t,
    }
    return
  end
  if t[1] ~= nil then
    for _, v in ipairs(t) do
      if type(v) == "table" then
        local bf, bv = walk(v, depth + 1, out)
        if bf then return bf, bv end
      end
    end
    return
  end
  for _, v in pairs(t) do
    if type(v) == "table" then
      local bf, bv = walk(v, depth + 1, out)
      if bf then return bf, bv end
    end
  end
end

function _M.items(body)
  local out = {}
  local bad_field, bad_value = walk(body, 0, out)
  if bad_field then return nil, bad_field, bad_value end
  return out
end

return _M

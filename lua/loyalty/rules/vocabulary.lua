-- The rule vocabulary: which settings each rule file may set, what values they take, and plain-words
-- checks of those values. Validation turns settings into the compiled form the engine evaluates.
local _M = {}

local type, pairs, ipairs, tostring, math_floor = type, pairs, ipairs, tostring, math.floor

-- File order is also evaluation/hash order.
_M.FILES = { "program.lua", "earn.lua", "redemption.lua", "categories.lua" }

local NUMBER_GE0 = "a number, 0 or more"
local NUMBER_GT0 = "a number above 0"

_M.SETTINGS = {
  ["program.lua"] = {
    currency = "a currency code such as \"INR\"",
    rounding = "\"floor\", \"round\" or \"ceil\"",
    round_per = "\"line\" or \"order\"",
    tier_names = "a list of the program's tier names, as the CRM names them (checked in capitals)",
  },
  ["earn.lua"] = {
    points_earned = NUMBER_GT0,
    for_every = NUMBER_GT0,
    minimum_order = NUMBER_GE0,
    cap_per_order = NUMBER_GT0,
    exclude_shipping = "true or false",
    exclude_tax = "true or false",
    exclude_categories = "a list of category names",
    exclude_skus = "a list of SKUs",
    category_multipliers = "a table of category = multiplier",
    sku_multipliers = "a table of SKU = multiplier",
    tier_multipliers = "a table of TIER = multiplier",
    bonus = "a function(line, customer, cart) returning a multiplier and a reason",
  },
  ["redemption.lua"] = {
    point_value = NUMBER_GT0,
    min_points = NUMBER_GE0,
    max_points = NUMBER_GT0,
    multiple_of = "a whole number above 0",
    max_share = "a number above 0 and at most 1 (0.5 = half the order)",
    tiers = "a table of TIER = { min_points, max_points, multiple_of, max_share }",
    refuse_categories = "a list of categories that cannot be paid with points",
    refuse_skus = "a list of SKUs that cannot be paid with points",
    refuse = "a function(customer, cart) returning a reason to refuse, or nothing",
  },
  ["categories.lua"] = {
    attributes = "a table of category = { attribute = value }",
    sku_attributes = "a table of SKU = { attribute = value }",
    precedence = "a list of category names, most important first",
  },
}

local TIER_OVERRIDES = { min_points = true, max_points = true, multiple_of = true, max_share = true }

-- Edit distance, for "did you mean".
local function distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = (ca == b:byte(j)) and 0 or 1
      local v = prev[j] + 1
      if cur[j - 1] + 1 < v then v = cur[j - 1] + 1 end
      if prev[j - 1] + cost < v then v = prev[j - 1] + cost end
      cur[j] = v
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

-- The closest candidate within a third of the word's length (at least 1 edit), or nil.
function _M.suggest(word, candidates)
  if type(word) ~= "string" then return nil end
  local best, best_d
  local allowed = math.max(1, math_floor(#word / 3))
  for _, c in ipairs(candidates) do
    local d = distance(word:lower(), c:lower())
    if d <= allowed and (not best_d or d < best_d or (d == best_d and c < best)) then best, best_d = c, d end
  end
  return best
end

function _M.names(file)
  local list = {}
  for k in pairs(_M.SETTINGS[file] or {}) do list[#list + 1] = k end
  table.sort(list)
  return list
end

-- Which file a setting belongs to (for "'max_points' belongs in redemption.lua").
function _M.home_of(name)
  for _, f in ipairs(_M.FILES) do
    if _M.SETTINGS[f][name] then return f end
  end
end

-- Sane bounds for everything a rule set hands the engine (finite; no real order comes near them).
local LIMIT, MAX_MULTIPLIER, MAX_TEXT = 1e12, 1000, 1024
_M.LIMIT, _M.MAX_MULTIPLIER, _M.MAX_TEXT = LIMIT, MAX_MULTIPLIER, MAX_TEXT

local function is_number(v) return type(v) == "number" and v >= -LIMIT and v <= LIMIT end  -- false for NaN

local function too_long(v) return type(v) == "string" and #v > MAX_TEXT end

-- Checks one value; returns nil or the problem in words.
local function check_number(v, kind)
  if not is_number(v) then
    if type(v) == "number" then return "should be " .. kind .. " (at most " .. LIMIT .. "), not " .. tostring(v) end
    return "should be " .. kind .. ", not " .. (type(v) == "string" and ("the text \"" .. v:sub(1, 40) .. "\"") or
      type(v))
  end
  if kind == NUMBER_GT0 and v <= 0 then return "should be " .. kind .. ", not " .. tostring(v) end
  if kind == NUMBER_GE0 and v < 0 then return "should be " .. kind .. ", not " .. tostring(v) end
end

local function check_whole(v)
  if not is_number(v) or v <= 0 or v % 1 ~= 0 then return "should be a whole number above 0, not " .. tostring(v) end
end

local function check_share(v)
  if not is_number(v) or v <= 0 or v > 1 then
    return "should be a number above 0 and at most 1 (0.5 means half the order), not " .. tostring(v)
  end
end

local function check_list(v)
  if type(v) ~= "table" then return "should be a list like { \"a\", \"b\" }, not " .. type(v) end
  local n = 0
  for k, item in pairs(v) do
    n = n + 1
    if type(k) ~= "number" then
      return "should be a list like { \"a\", \"b\" }; found the key '" .. tostring(k) .. "'"
    end
    if type(item) ~= "string" then return "should list names as text; item " .. tostring(k) .. " is " .. type(item) end
    if too_long(item) then return "has an item of " .. #item .. " bytes; names have at most " .. MAX_TEXT end
  end
  if n ~= #v then return "should be a list without gaps" end
end

local function check_multipliers(v)
  if type(v) ~= "table" then return "should be a table like { name = 2 }, not " .. type(v) end
  for k, m in pairs(v) do
    if type(k) ~= "string" then return "should be keyed by name; found the key " .. tostring(k) end
    if too_long(k) then return "has a name of " .. #k .. " bytes; names have at most " .. MAX_TEXT end
    if not is_number(m) or m < 0 or m > MAX_MULTIPLIER then
      return "gives '" .. k .. "' the multiplier " .. tostring(m) .. "; multipliers are numbers from 0 to " ..
        MAX_MULTIPLIER
    end
  end
end

local function check_attribute_map(v)
  if type(v) ~= "table" then return "should be a table like { name = { attribute = \"value\" } }, not " .. type(v) end
  for k, attrs in pairs(v) do
    if type(k) ~= "string" then return "should be keyed by name; found the key " .. tostring(k) end
    if too_long(k) then return "has a name of " .. #k .. " bytes; names have at most " .. MAX_TEXT end
    if type(attrs) ~= "table" then
      return "gives '" .. k .. "' a " .. type(attrs) .. "; expected { attribute = value }"
    end
    for name, value in pairs(attrs) do
      if type(name) ~= "string" then return "gives '" .. k .. "' an attribute without a name" end
      if too_long(name) then return "gives '" .. k .. "' an attribute name of " .. #name .. " bytes" end
      local t = type(value)
      if t ~= "string" and t ~= "number" and t ~= "boolean" then
        return "gives '" .. k .. "." .. name .. "' a " .. t .. "; attribute values are text, numbers or true/false"
      end
      if t == "number" and not is_number(value) then
        return "gives '" .. k .. "." .. name .. "' the number " .. tostring(value) .. "; numbers are finite, within " ..
          "+-" .. LIMIT
      end
      if too_long(value) then
        return "gives '" .. k .. "." .. name .. "' a text of " .. #value .. " bytes; at most " .. MAX_TEXT
      end
    end
  end
end

local CHECKS = {
  currency = function(v)
    if type(v) ~= "string" or not v:match("^%u%u%u$") then
      return "should be a 3-letter currency code such as \"INR\""
    end
  end,
  rounding = function(v)
    if v ~= "floor" and v ~= "round" and v ~= "ceil" then
      return "should be \"floor\", \"round\" or \"ceil\", not " .. tostring(v)
    end
  end,
  round_per = function(v)
    if v ~= "line" and v ~= "order" then return "should be \"line\" or \"order\", not " .. tostring(v) end
  end,
  points_earned = function(v) return check_number(v, NUMBER_GT0) end,
  for_every = function(v) return check_number(v, NUMBER_GT0) end,
  minimum_order = function(v) return check_number(v, NUMBER_GE0) end,
  cap_per_order = function(v) return check_number(v, NUMBER_GT0) end,
  exclude_shipping = function(v) if type(v) ~= "boolean" then return "should be true or false" end end,
  exclude_tax = function(v) if type(v) ~= "boolean" then return "should be true or false" end end,
  exclude_categories = check_list,
  exclude_skus = check_list,
  category_multipliers = check_multipliers,
  sku_multipliers = check_multipliers,
  tier_multipliers = check_multipliers,
  bonus = function(v) if type(v) ~= "function" then return "should be a function(line, customer, cart)" end end,
  point_value = function(v) return check_number(v, NUMBER_GT0) end,
  min_points = function(v) return check_number(v, NUMBER_GE0) end,
  max_points = function(v) return check_number(v, NUMBER_GT0) end,
  multiple_of = check_whole,
  max_share = check_share,
  tiers = function(v)
    if type(v) ~= "table" then return "should be a table like { GOLD = { max_points = 8000 } }" end
    for tier, o in pairs(v) do
      if type(tier) ~= "string" or type(o) ~= "table" or too_long(tier) then
        return "should map a tier name to { ... }; '" .. tostring(tier) .. "' does not"
      end
      for k, x in pairs(o) do
        if type(k) ~= "string" or not TIER_OVERRIDES[k] then
          local hint = _M.suggest(tostring(k), { "max_points", "max_share", "min_points", "multiple_of" })
          return "sets the unknown setting '" .. tostring(k) .. "' for tier " .. tier ..
            (hint and (" (did you mean '" .. hint .. "'?)") or "")
        end
        local p
        if k == "multiple_of" then p = check_whole(x)
        elseif k == "max_share" then p = check_share(x)
        elseif k == "min_points" then p = check_number(x, NUMBER_GE0)
        else p = check_number(x, NUMBER_GT0) end
        if p then return "sets " .. k .. " for tier " .. tier .. " that " .. p end
      end
    end
  end,
  refuse = function(v) if type(v) ~= "function" then return "should be a function(customer, cart)" end end,
  refuse_categories = check_list,
  refuse_skus = check_list,
  attributes = check_attribute_map,
  sku_attributes = check_attribute_map,
  precedence = check_list,
  tier_names = check_list,
}

function _M.check_value(name, value)
  return CHECKS[name](value)
end

-- Settings that must be present when their file exists.
_M.REQUIRED = {
  ["program.lua"] = { "currency", "rounding", "round_per" },
  ["earn.lua"] = { "points_earned", "for_every" },
  ["redemption.lua"] = { "point_value" },
  ["categories.lua"] = {},
}

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end
_M.set_of = set_of

return _M

-- The order log: one JSON line per posted order, for `loyalty rules replay` and `rules drift`.
-- Each line holds the cart (lines, amounts, categories), the customer's tier at the time, the rule set's hash,
-- the rules' estimate, what the CRM awarded and what the points paid (redeemed points and their value), and the
-- CRM request ids. Nothing secret and no personal data beyond the customer identifier, which the setting
-- `hash_customer` replaces by a salted digest. Files are rotated by size: path, path.1 ... path.<keep>.
-- Writing never fails an order: a fault is reported through the program's log sink and the order goes on.
local errors = require "loyalty.errors"

local _M = {}

_M.VERSION = 1

local KEYS = { path = "string", max_bytes = "number", keep = "number", hash_customer = "boolean",
  salt = "string" }
_M.KEYS = KEYS

local DEFAULT_MAX_BYTES = 64 * 1024 * 1024
local DEFAULT_KEEP = 5

--- Checks the `order_log` settings table; returns nil or a config error.
function _M.check_settings(t)
  for k, v in pairs(t) do
    local want = KEYS[k]
    if not want then return errors.config("setting 'order_log." .. tostring(k) .. "': unknown setting",
      "order_log." .. tostring(k)) end
    if type(v) ~= want then
      return errors.config("setting 'order_log." .. k .. "': must be a " .. want .. ", got " .. type(v),
        "order_log." .. k)
    end
  end
  if not t.path or t.path == "" then
    return errors.config("setting 'order_log.path': missing (the JSON-lines file orders are appended to)",
      "order_log.path")
  end
  if t.max_bytes and t.max_bytes < 1024 then
    return errors.config("setting 'order_log.max_bytes': must be at least 1024", "order_log.max_bytes")
  end
  if t.keep and (t.keep < 1 or t.keep ~= math.floor(t.keep)) then
    return errors.config("setting 'order_log.keep': must be a whole number >= 1", "order_log.keep")
  end
  if t.hash_customer and (not t.salt or #t.salt < 8) then
    -- an unsalted digest of a phone number is found by trying every number
    return errors.config("setting 'order_log.salt': hash_customer needs a salt of at least 8 characters " ..
      "(keep it out of the log: env(\"ORDER_LOG_SALT\"))", "order_log.salt")
  end
end

local Log = {}
Log.__index = Log

--- order_log.open(settings_table [, emit]) -> log (writes lazily; opening never touches the disk).
function _M.open(t, emit)
  return setmetatable({ path = t.path, max_bytes = t.max_bytes or DEFAULT_MAX_BYTES, keep = t.keep or DEFAULT_KEEP,
    hash_customer = t.hash_customer == true, salt = t.salt, emit = emit or function() end }, Log)
end

-- The customer as the log names it: the identifier, or a salted digest of it.
function Log:customer_id(ident)
  local id = ident and (tostring(ident.key) .. ":" .. tostring(ident.value)) or nil
  if id and self.hash_customer then
    return "md5:" .. require("loyalty.core").md5_hex(self.salt .. "\0" .. id)
  end
  return id
end

local function num(v)
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then return v end
  if type(v) == "string" then return tonumber(v) end
  return nil
end

local function text(v)
  if type(v) == "string" then return v end
  if type(v) == "number" then return tostring(v) end
  return nil
end

-- The cart as the rules read it, and only that: no names, addresses or free text.
local function cart_record(order, currency)
  local lines = {}
  for i, l in ipairs(type(order.lines) == "table" and order.lines or {}) do
    if type(l) == "table" then
      local cats = l.categories
      if cats == nil then cats = l.category end
      local list
      if type(cats) == "table" then
        list = {}
        for _, c in ipairs(cats) do list[#list + 1] = text(c) end
      elseif cats ~= nil then list = { text(cats) } end
      lines[i] = { sku = text(l.sku), qty = num(l.qty), price = num(l.price), amount = num(l.amount),
        discount = num(l.discount), categories = list }
    end
  end
  return { currency = text(order.currency) or currency, lines = lines, shipping = num(order.shipping),
    tax = num(order.tax), total = num(order.total) }
end

-- Every CRM call behind the order, each id once, in the order the calls were made.
local function request_ids(r)
  local ids, seen = {}, {}
  local function add(v)
    if type(v) == "string" and v ~= "" and not seen[v] then ids[#ids + 1], seen[v] = v, true end
  end
  if type(r.request_ids) == "table" then for _, v in ipairs(r.request_ids) do add(v) end end
  add(r.request_id)
  if type(r.crm_error) == "table" then add(r.crm_error.request_id) end
  return ids
end

local function iso_now()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

--[[ The record of one posted order. a: { order, ident, tier, rules (ruleset or nil), estimate (earn result or nil),
result (order_placed's result), provider }. ]]
function Log:record(a)
  local order, r = a.order, a.result or {}
  local red = type(order.redemption) == "table" and order.redemption or nil
  local red_points, red_value = red and num(red.points), red and num(red.value)
  -- the CRM's own rate: what it said a point is worth, else what it charged per redeemed point
  local rate = num(r.point_value)
  if not rate and red_points and red_value and red_points > 0 then rate = red_value / red_points end
  local est = a.estimate and num(a.estimate.points)
  local pv = a.rules and a.rules.compiled and a.rules.compiled.redemption and a.rules.compiled.redemption.point_value
  return {
    v = _M.VERSION, at = iso_now(), order_id = text(order.id), store_code = text(order.store_code),
    provider = text(a.provider), customer = self:customer_id(a.ident),
    tier = type(a.tier) == "string" and a.tier:upper() or nil,
    rules_hash = a.rules and a.rules.hash or nil,
    cart = cart_record(order, a.rules and a.rules.currency),
    estimate = est,
    -- for a CRM that awards an amount of money, not points: the estimate in money at the rules' point_value
    estimate_value = est and pv and math.floor(est * pv * 100 + 0.5) / 100 or nil,
    awarded = num(r.points_earned),
    redeemed_points = red_points, redeemed_value = red_value, point_value = rate,
    queued = r.queued == true or nil, duplicate = r.duplicate == true or nil,
    transaction_id = text(r.transaction_id), request_ids = #request_ids(r) > 0 and request_ids(r) or nil,
  }
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local size = f:seek("end") or 0
  f:close()
  return size
end

-- path -> path.1 -> ... -> path.<keep>; the oldest is removed.
function Log:rotate()
  os.remove(self.path .. "." .. self.keep)
  for i = self.keep - 1, 1, -1 do os.rename(self.path .. "." .. i, self.path .. "." .. (i + 1)) end
  os.rename(self.path, self.path .. ".1")
end

--- Appends one record; returns true or nil, err (never raises).
function Log:append(record)
  local ok, res, err = pcall(function()
    local cjson = require "cjson.safe"
    local line, jerr = cjson.encode(record)
    if not line then return nil, "the record could not be encoded: " .. tostring(jerr) end
    line = line .. "\n"
    if file_size(self.path) + #line > self.max_bytes then self:rotate() end
    local f, oerr = io.open(self.path, "ab")
    if not f then return nil, oerr end
    local wok, werr = f:write(line)
    f:close()
    if not wok then return nil, werr end
    return true
  end)
  if ok and res then return true end
  local message = tostring(ok and err or res)
  self.emit("warn", "order_log_failed", { path = self.path, error = message })
  return nil, errors.new { kind = "storage", message = "order log: " .. message }
end

--- Records a posted order; never raises and never fails the order.
function Log:order_posted(a)
  local ok, rec = pcall(self.record, self, a)
  if not ok then
    self.emit("warn", "order_log_failed", { path = self.path, error = tostring(rec) })
    return nil
  end
  return self:append(rec)
end

return _M

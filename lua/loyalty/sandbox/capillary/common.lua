-- Helpers shared by the Capillary sandbox's v1.1 and v2 handlers: envelopes, identifier lookup,
-- customer renderings.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.capillary.store")
local engine = require("loyalty.sandbox.capillary.engine")
local inferred = require("loyalty.sandbox.capillary.inferred")

local _M = {}
local array = json.array
_M.array = array

--- Object-or-array children (`"customer": {…}` vs `"customer": [ {…} ]`) as an array.
function _M.list(x)
  if type(x) ~= "table" then return {} end
  if x[1] ~= nil then return x end
  if next(x) == nil then return {} end
  return { x }
end

function _M.random_id(alphabet, n)
  local out = {}
  for i = 1, n do
    local k = math.random(1, #alphabet)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

-- v1.1 envelopes ---------------------------------------------------------------------------------

function _M.v11_status(success, code, message, total, success_count)
  return {
    success = success and "true" or "false", code = code, message = message,
    total = total, success_count = success_count,
  }
end

--- A request-level v1.1 error: HTTP status and body.
function _M.v11_error(http, code, message)
  return http, { response = { status = _M.v11_status(false, code, message) } }
end

--- Request status for a batch with `ok` successes of `n`: 200, 201 (partial) or 500 (all failed).
function _M.v11_batch_status(ok, n, as_string)
  local total, count = n, ok
  if as_string then total, count = tostring(n), tostring(ok) end
  if ok == n then return _M.v11_status(true, 200, "Success", total, count) end
  local s = ok == 0 and inferred.V11_ALL_FAILED or inferred.V11_PARTIAL
  return _M.v11_status(ok > 0, s.code, s.message, total, count)
end

function _M.item_status(success, code, message, warnings)
  return {
    success = success and "true" or "false", code = code, message = message,
    warnings = warnings and { warning = array(warnings) } or nil,
  }
end

-- v2 envelopes -----------------------------------------------------------------------------------

function _M.v2_errors(http, list)
  local errs = array {}
  for _, e in ipairs(list) do errs[#errs + 1] = { status = false, code = e.code, message = e.message } end
  return http, { errors = errs, warnings = array {} }
end

function _M.v2_error(http, code, message)
  return _M.v2_errors(http, { { code = code, message = message } })
end

--- The JSON object body of a v2 write, or nil, status, body of the 400 reply.
function _M.v2_body(req)
  if type(req.body) ~= "table" then return nil, _M.v2_error(400, 400, "Invalid input: JSON object expected") end
  return req.body
end

-- Identifiers ------------------------------------------------------------------------------------

local V11_KINDS = { "mobile", "email", "external_id", "card_number", "id", "user_id" }

--- Finds the customer named by a v1.1 identifier table (`mobile`, `email`, `external_id`,
-- `card_number` or `card_details.card_number`, `id`/`user_id`). Returns customer or nil, plus the
-- identifier kind and value that were given (first present).
function _M.identify_v11(t)
  if type(t) ~= "table" then return nil end
  local given_kind, given_value
  if t.card_number == nil and type(t.card_details) == "table" then t.card_number = t.card_details.card_number end
  for _, kind in ipairs(V11_KINDS) do
    local v = t[kind]
    if v ~= nil and v ~= "" then
      v = tostring(v)
      given_kind, given_value = given_kind or kind, given_value or v
      local c = cstore.find_customer(kind, v)
      if c then return c, kind, v end
    end
  end
  return nil, given_kind, given_value
end

local V2_KINDS = { mobile = "mobile", email = "email", externalId = "external_id", externalid = "external_id",
  external_id = "external_id", cardnumber = "card_number", card = "card_number", id = "id" }
_M.V2_KINDS = V2_KINDS

function _M.find_v2(name, value)
  local kind = V2_KINDS[name or ""] or V2_KINDS[(name or ""):lower()]
  if not kind then return nil, "kind" end
  return cstore.find_customer(kind, value)
end

-- Renderings -------------------------------------------------------------------------------------

local function fields(list)
  local out = array {}
  for _, f in ipairs(list or {}) do out[#out + 1] = { name = f.name, value = f.value } end
  return { field = out }
end
_M.fields = fields

function _M.subscriptions_v11(c, key)
  local out = array {}
  for _, s in ipairs(c.subscriptions or {}) do
    out[#out + 1] = { channel = s.channel, priority = s.priority, scope = s.scope, [key or "status"] = s.is_subscribed }
  end
  return { subscription = out }
end

local function store_ref(cfg, till_code)
  local till = till_code and cfg.tills[till_code]
  if not till then return { code = "", name = "" }, { code = till_code or "", name = till_code or "" } end
  return { code = till.store_code or "", name = till.store_name or "" }, { code = till.code, name = till.code }
end

--- The v1.1 customer as customer/get shows it (numbers where the get sample has numbers).
function _M.customer_get_v11(cfg, c, flags)
  local rstore, rtill = store_ref(cfg, c.registered_till)
  local out = {
    firstname = c.firstname, lastname = c.lastname, mobile = c.mobile or "", email = c.email or "",
    external_id = c.external_id or "",
    lifetime_points = c.lifetime_points, lifetime_purchases = c.lifetime_purchases,
    loyalty_points = c.loyalty_points, current_slab = c.slab,
    tier_expiry_date = cfg.program.tier_expiry_date or "",
    registered_on = c.registered_on, updated_on = c.updated_on, type = c.type, source = (c.source or ""):lower(),
    registered_store = rstore, registered_till = rtill,
    fraud_details = { status = c.fraud_status or "NONE", marked_by = "", modified_on = "" },
    custom_fields = fields(c.custom_fields), extended_fields = fields(c.extended_fields),
    coupons = { coupon = array(_M.customer_coupons(c)) }, notes = array {},
    -- [DOC S-V11 "Get Customer Details"] also in every reply: identifiers, registered_by, trackers,
    -- current_nps_status and the recent transactions (flags add more, they do not switch these on).
    identifiers = array {}, registered_by = rtill and rtill.code or "", trackers = array {},
    current_nps_status = array {},
    item_status = _M.item_status(true, "1000", "Customer successfully retrieved", {}),
  }
  if flags.user_id then out.user_id = c.id end
  if flags.points_summary then
    out.points_summaries = { points_summary = array { engine.points_summary_v11(cfg, c) } }
  end
  if flags.subscriptions then out.subscriptions = _M.subscriptions_v11(c) end
  do -- [DOC] "10 recent transactions" with or without transactions=true
    local list = array {}
    local ids = c.transactions or {}
    for i = #ids, math.max(#ids - 9, 1), -1 do
      local t = store.get_json("txn:" .. ids[i])
      if t then
        list[#list + 1] = { id = tostring(t.id), number = t.number, type = t.type,
          created_date = t.billing_time, store = t.attribution and t.attribution.till or "" }
      end
    end
    out.transactions = { transaction = list }
  end
  return out
end

--- The v1.1 customer as customer/add and customer/update show it.
function _M.customer_write_v11(cfg, c, item_status)
  return {
    user_id = c.id, firstname = c.firstname, lastname = c.lastname, mobile = c.mobile or "",
    email = c.email or "", external_id = c.external_id or "",
    lifetime_points = c.lifetime_points, loyalty_points = c.loyalty_points, current_slab = c.slab,
    tier_expiry_date = cfg.program.tier_expiry_date or "",
    points_summaries = { points_summary = array { engine.points_summary_v11(cfg, c) } },
    lifetime_purchases = c.lifetime_purchases, registered_on = c.registered_on, updated_on = c.updated_on,
    type = c.type, source = (c.source or ""):lower(), fraud_status = c.fraud_status or "NONE",
    custom_fields = fields(c.custom_fields), extended_fields = fields(c.extended_fields),
    subscriptions = _M.subscriptions_v11(c), side_effects = { effect = array {} },
    item_status = item_status,
  }
end

--- The customer inside a transaction/add reply (strings, as in the documented sample).
function _M.customer_txn_v11(cfg, c)
  return {
    user_id = tostring(c.id), mobile = c.mobile or "", email = c.email or "", external_id = c.external_id or "",
    firstname = c.firstname, lastname = c.lastname,
    lifetime_points = tostring(c.lifetime_points), loyalty_points = tostring(c.loyalty_points),
    current_slab = c.slab, tier_expiry_date = cfg.program.tier_expiry_date or "",
    points_summaries = { points_summary = array { engine.points_summary_v11(cfg, c) } },
    lifetime_purchases = tostring(c.lifetime_purchases), type = c.type, source = (c.source or ""):lower(),
  }
end

function _M.customer_coupons(c)
  local out = {}
  for _, code in ipairs(store.get_json("coupons") or {}) do
    local cp = store.get_json("coupon:" .. code)
    if cp and cp.owner_id == c.id and not cp.redeemed and cp.valid_till >= os.date("!%Y-%m-%d") then
      out[#out + 1] = { code = cp.code, series_code = cp.series_code, valid_till = cp.valid_till,
        description = cp.description }
    end
  end
  return out
end

--- Sets or replaces name/value pairs in list from a `{field = [...]}` or `{name = value}` table.
function _M.merge_fields(list, given)
  list = list or array {}
  if type(given) ~= "table" then return list end
  local pairs_in = {}
  if given.field then
    for _, f in ipairs(_M.list(given.field)) do pairs_in[#pairs_in + 1] = { f.name, f.value } end
  else
    for k, v in pairs(given) do pairs_in[#pairs_in + 1] = { k, v } end
  end
  for _, p in ipairs(pairs_in) do
    local name, value = tostring(p[1]), p[2]
    local found = false
    for _, f in ipairs(list) do
      if f.name == name then f.value = value found = true break end
    end
    if not found then list[#list + 1] = { name = name, value = value } end
  end
  return array(list)
end

return _M

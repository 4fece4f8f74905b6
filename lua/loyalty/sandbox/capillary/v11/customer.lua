-- Capillary v1.1 customer/* (add, update, get, subscriptions, search) and the registration that
-- transaction/add's auto-registration and v2 share. Shapes: reference/capillary.md §4.
local json = require("loyalty.sandbox.json")
local cstore = require("loyalty.sandbox.capillary.store")
local engine = require("loyalty.sandbox.capillary.engine")
local common = require("loyalty.sandbox.capillary.common")
local inferred = require("loyalty.sandbox.capillary.inferred")
local input = require("loyalty.sandbox.capillary.v11.input")

local _M = {}
local array, list, item_status = json.array, common.list, common.item_status

-- Customers ------------------------------------------------------------------------------------

local function valid_identifiers(t)
  if t.mobile ~= nil and not tostring(t.mobile):match("^%d%d%d%d%d%d%d+$") then
    return { code = 1001, message = "Invalid mobile number" }
  end
  if t.email ~= nil and not tostring(t.email):match("^[^@%s]+@[^@%s]+$") then
    return { code = 1002, message = "Invalid email" }
  end
  if t.external_id ~= nil and tostring(t.external_id) == "" then
    return { code = 1003, message = "Invalid external id" }
  end
  return nil
end

local function apply_profile(c, t)
  if t.firstname then c.firstname = tostring(t.firstname) end
  if t.lastname then c.lastname = tostring(t.lastname) end
  c.custom_fields = common.merge_fields(c.custom_fields, t.custom_fields)
  c.extended_fields = common.merge_fields(c.extended_fields, t.extended_fields)
  if type(t.subscriptions) == "table" then
    for _, s in ipairs(list(t.subscriptions.subscription)) do
      local channel, priority = tostring(s.channel or ""):upper(), tostring(s.priority or ""):upper()
      local found
      for _, have in ipairs(c.subscriptions) do
        if have.channel == channel and have.priority == priority then found = have end
      end
      if not found then
        found = { channel = channel, priority = priority, scope = "ALL" }
        c.subscriptions[#c.subscriptions + 1] = found
      end
      found.is_subscribed = tostring(s.is_subscribed or s.status or "1")
    end
  end
  if type(t.fraud_status) == "table" and t.fraud_status.status then c.fraud_status = t.fraud_status.status end
  c.updated_on = cstore.now_string()
end

-- Creates a customer from v1.1 fields (registration and transaction auto-registration).
local function register(req, t)
  local c = {
    id = cstore.new_customer_id(),
    mobile = t.mobile and tostring(t.mobile), email = t.email and tostring(t.email),
    external_id = t.external_id and tostring(t.external_id),
    card_number = type(t.card_details) == "table" and t.card_details.card_number or nil,
    firstname = "", lastname = "", type = tostring(t.type or "LOYALTY"):upper(),
    source = tostring(t.source or "INSTORE"):upper(),
    registered_on = t.registered_on or cstore.now_string(),
    registered_till = (req.attribution and req.attribution.till) or t.associated_with,
    attribution = req.attribution,
    loyalty_points = 0, lifetime_points = 0, lifetime_purchases = 0, redeemed = 0, expired = 0,
    returned = 0, adjusted = 0, fraud_status = "NONE", slab = req.cfg.program.tiers[1].name,
    subscriptions = array {}, custom_fields = array {}, extended_fields = array {}, transactions = array {},
  }
  c.sources = array { c.source }
  c.slab = engine.tier_for(req.cfg, 0).name
  apply_profile(c, t)
  c.updated_on = c.registered_on
  cstore.put_customer(c)
  return c
end

-- The customer matched by any identifier in t; two different matches are a conflict (1016).
local function match_existing(t)
  local found, kind_found
  for _, kind in ipairs { "mobile", "email", "external_id" } do
    if t[kind] ~= nil then
      local c = cstore.find_customer(kind, tostring(t[kind]))
      if c then
        if found and found.id ~= c.id then
          return nil, { code = 1016, message = kind .. " belongs to another customer (" .. kind_found .. " matched)" }
        end
        found, kind_found = found or c, kind_found or kind
      end
    end
  end
  return found
end

local function customer_add(req)
  local items, status, body = input.root_items(req, "customer")
  if not items then return status, body end
  local out, ok_count = array {}, 0
  for _, t in ipairs(items) do
    local err = valid_identifiers(t)
    if not err and t.mobile == nil and t.email == nil and t.external_id == nil then
      err = { code = 1007, message = "No valid primary identifier" }
    end
    local existing
    if not err then existing, err = match_existing(t) end
    if err then
      out[#out + 1] = { mobile = t.mobile, email = t.email, external_id = t.external_id,
        item_status = item_status(false, err.code, err.message, {}) }
    else
      local c, message
      if existing then
        c = cstore.locked(existing, function()
          local cur = cstore.customer(existing.id)
          for _, kind in ipairs { "mobile", "email", "external_id" } do
            if (cur[kind] == nil or cur[kind] == "") and t[kind] then cur[kind] = tostring(t[kind]) end
          end
          if t.type and tostring(t.type):upper() == "LOYALTY" then cur.type = "LOYALTY" end
          apply_profile(cur, t)
          cstore.put_customer(cur)
          return cur
        end)
        message = inferred.V11_UPSERT_UPDATED_MESSAGE
      else
        c = register(req, t)
        message = "Customer registration successful"
      end
      ok_count = ok_count + 1
      out[#out + 1] = common.customer_write_v11(req.cfg, c, item_status(true, 1000, message, {}))
    end
  end
  return 200, { response = {
    status = common.v11_batch_status(ok_count, #items, false),
    customers = { customer = out },
  } }
end

local function customer_update(req)
  local items, status, body = input.root_items(req, "customer")
  if not items then return status, body end
  local t = items[1] or {}
  local c = common.identify_v11(t)
  local out
  if not c then
    local nf = inferred.V11_CUSTOMER_GET_NOT_FOUND
    out = { mobile = t.mobile, email = t.email, external_id = t.external_id,
      item_status = item_status(false, nf.code, nf.message, {}) }
    return 200, { response = { status = common.v11_batch_status(0, 1, true),
      customers = { customer = array { out } } } }
  end
  local err
  c = cstore.locked(c, function()
    local cur = cstore.customer(c.id)
    local new_type = t.type and tostring(t.type):upper()
    if new_type == "NON_LOYALTY" and cur.type == "LOYALTY" then
      err = { code = "1046", message = "Loyalty customer cannot be made non-loyalty" }
      return cur
    end
    if new_type == "LOYALTY" then cur.type = "LOYALTY" end
    apply_profile(cur, t)
    cstore.put_customer(cur)
    return cur
  end)
  if err then
    out = { user_id = c.id, mobile = c.mobile, item_status = item_status(false, err.code, err.message, {}) }
    return 200, { response = { status = common.v11_batch_status(0, 1, true),
      customers = { customer = array { out } } } }
  end
  out = common.customer_write_v11(req.cfg, c, item_status(true, "1000", "Customer successfully updated", {}))
  return 200, { response = { status = common.v11_batch_status(1, 1, true), customers = { customer = array { out } } } }
end

local function customer_get(req)
  local args = req.args
  local kind, values, bad_status, bad_body = input.identifier_arg(args)
  if not kind then return bad_status, bad_body end
  local flags = {
    points_summary = input.truthy(args.points_summary), subscriptions = input.truthy(args.subscriptions),
    user_id = input.truthy(args.user_id), transactions = input.truthy(args.transactions),
  }
  local out, ok_count, n = array {}, 0, 0
  for value in values:gmatch("[^,]+") do
    n = n + 1
    local c = cstore.find_customer(kind, value)
    if c then
      ok_count = ok_count + 1
      out[#out + 1] = common.customer_get_v11(req.cfg, c, flags)
    else
      local nf = inferred.V11_CUSTOMER_GET_NOT_FOUND
      out[#out + 1] = { [kind] = value, item_status = item_status(false, nf.code, nf.message, {}) }
    end
  end
  return 200, { response = {
    status = common.v11_batch_status(ok_count, n, true), customers = { customer = out },
  } }
end

local CHANNELS = { SMS = true, EMAIL = true }
local PRIORITIES = { TRANS = true, BULK = true }

local function customer_subscriptions(req)
  local items, status, body = input.root_items(req, "subscription")
  if not items then return status, body end
  local out, ok_count = array {}, 0
  for _, s in ipairs(items) do
    local c = common.identify_v11(s)
    local channel, priority = tostring(s.channel or ""):upper(), tostring(s.priority or ""):upper()
    local scope, subscribed = tostring(s.scope or "all"):upper(), tostring(s.is_subscribed or "")
    local err
    if not c then err = { "1012", inferred.V11_CUSTOMER_GET_NOT_FOUND.message }
    elseif not CHANNELS[channel] then err = { "1101", "Invalid subscription channel" }
    elseif not PRIORITIES[priority] then err = { "1102", "Invalid subscription priority" }
    elseif scope ~= "ALL" then err = { "1103", "Invalid subscription scope" }
    elseif subscribed ~= "0" and subscribed ~= "1" then err = { "1104", "Invalid subscription status" }
    end
    if err then
      out[#out + 1] = { email = s.email, mobile = s.mobile, channel = channel, priority = priority,
        scope = scope, is_subscribed = subscribed, item_status = item_status(false, err[1], err[2]) }
    else
      c = cstore.locked(c, function()
        local cur = cstore.customer(c.id)
        apply_profile(cur, { subscriptions = { subscription = { { channel = channel, priority = priority,
          is_subscribed = subscribed } } } })
        cstore.put_customer(cur)
        return cur
      end)
      ok_count = ok_count + 1
      out[#out + 1] = { user_id = c.id, email = c.email or "", mobile = c.mobile or "", channel = channel,
        priority = priority, scope = scope, is_subscribed = subscribed,
        item_status = item_status(true, "1000", "Subscription successfully updated") }
    end
  end
  return 200, { response = {
    status = common.v11_batch_status(ok_count, #items, true), subscriptions = { subscription = out },
  } }
end

-- customer/search (documented: q=(ATTR:OPERATOR:VALUE) joined by &, results.item[] with the
-- customer's figures and its custom fields as attributes). EQUALS and EXACT only; ATTR is an
-- identifier, firstname, lastname, slab or a custom field's name (compared as text).
local SEARCH_FIELDS = { mobile = "mobile", email = "email", external_id = "external_id", firstname = "firstname",
  lastname = "lastname", slab = "slab" }

local function search_matches(c, cond)
  local field = SEARCH_FIELDS[cond.attr]
  if field then return tostring(c[field] or "") == cond.value end
  for _, f in ipairs(c.custom_fields or {}) do
    if f.name == cond.attr and tostring(f.value) == cond.value then return true end
  end
  return false
end

local function customer_search(req)
  local q = req.args.q
  if type(q) ~= "string" or q == "" then return common.v11_error(400, 400, "Input is invalid: q is required") end
  local conds = {}
  for part in (q .. "&"):gmatch("([^&]*)&") do
    local attr, op, value = part:gsub("^%s*%(?", ""):gsub("%)?%s*$", ""):match("^([^:]+):([^:]+):(.*)$")
    op = op and op:upper()
    if not attr or (op ~= "EQUALS" and op ~= "EXACT") then
      return common.v11_error(400, 400, "Input is invalid: unsupported search condition " .. part)
    end
    conds[#conds + 1] = { attr = attr, value = value }
  end
  local items = array {}
  for _, c in ipairs(cstore.each_customer()) do
    local ok = true
    for _, cond in ipairs(conds) do ok = ok and search_matches(c, cond) end
    if ok then
      local attrs = array {}
      for _, f in ipairs(c.custom_fields or {}) do attrs[#attrs + 1] = { name = f.name, value = f.value } end
      items[#items + 1] = {
        user_id = tostring(c.id), org_id = tostring(req.cfg.org.id), firstname = c.firstname, lastname = c.lastname,
        mobile = c.mobile or "", email = c.email or "", external_id = c.external_id or "None",
        loyalty_points = tostring(c.loyalty_points), lifetime_points = tostring(c.lifetime_points),
        lifetime_purchases = tostring(c.lifetime_purchases), current_slab = c.slab,
        registered_on = c.registered_on, attributes = { attribute = attrs },
      }
    end
  end
  return 200, { response = { status = { success = "true", code = "200", message = "SUCCESS" },
    customer = { count = tostring(#items), start = "0", rows = "10", results = { item = items } } } }
end

_M.register, _M.valid_identifiers = register, valid_identifiers
_M.add, _M.update, _M.get, _M.subscriptions, _M.search =
  customer_add, customer_update, customer_get, customer_subscriptions, customer_search

return _M

-- Capillary v1.1 endpoints. Shapes follow ../shared/reference/capillary.md §4 per endpoint,
-- including its string-vs-number quirks; undocumented choices come from loyalty.sandbox.inferred.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local engine = require("loyalty.sandbox.engine")
local common = require("loyalty.sandbox.common")
local otp = require("loyalty.sandbox.otp")
local inferred = require("loyalty.sandbox.inferred")

local _M = {}
local array, list, item_status = json.array, common.list, common.item_status

local function truthy(v) return v == true or v == "true" or v == "1" or v == 1 end

local function root_items(req, name)
  local root = type(req.body) == "table" and req.body.root
  if type(root) ~= "table" or root[name] == nil then
    return nil, common.v11_error(400, 400, "Input is invalid: root." .. name .. " is required")
  end
  return list(root[name])
end

-- Runs fn while holding customer c's write lock; a held lock is Capillary's 521.
local function locked(c, fn)
  if not store.lock(c.id) then error({ sandbox_locked = true }, 0) end
  local ok, a, b = pcall(fn)
  store.unlock(c.id)
  if not ok then error(a, 0) end
  return a, b
end
_M.locked = locked

local function attribution_of(req)
  return req.attribution
end

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
  c.updated_on = store.now_string()
end

-- Creates a customer from v1.1 fields (registration and transaction auto-registration).
local function register(req, t)
  local c = {
    id = store.new_customer_id(),
    mobile = t.mobile and tostring(t.mobile), email = t.email and tostring(t.email),
    external_id = t.external_id and tostring(t.external_id),
    card_number = type(t.card_details) == "table" and t.card_details.card_number or nil,
    firstname = "", lastname = "", type = tostring(t.type or "LOYALTY"):upper(),
    source = tostring(t.source or "INSTORE"):upper(),
    registered_on = t.registered_on or store.now_string(),
    registered_till = (req.attribution and req.attribution.till) or t.associated_with,
    attribution = attribution_of(req),
    loyalty_points = 0, lifetime_points = 0, lifetime_purchases = 0, redeemed = 0, expired = 0,
    returned = 0, adjusted = 0, fraud_status = "NONE", slab = req.cfg.program.tiers[1].name,
    subscriptions = array {}, custom_fields = array {}, extended_fields = array {}, transactions = array {},
  }
  c.sources = array { c.source }
  c.slab = engine.tier_for(req.cfg, 0).name
  apply_profile(c, t)
  c.updated_on = c.registered_on
  store.put_customer(c)
  return c
end

-- The customer matched by any identifier in t; two different matches are a conflict (1016).
local function match_existing(t)
  local found, kind_found
  for _, kind in ipairs { "mobile", "email", "external_id" } do
    if t[kind] ~= nil then
      local c = store.find_customer(kind, tostring(t[kind]))
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
  local items, status, body = root_items(req, "customer")
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
        c = locked(existing, function()
          local cur = store.customer(existing.id)
          for _, kind in ipairs { "mobile", "email", "external_id" } do
            if (cur[kind] == nil or cur[kind] == "") and t[kind] then cur[kind] = tostring(t[kind]) end
          end
          if t.type and tostring(t.type):upper() == "LOYALTY" then cur.type = "LOYALTY" end
          apply_profile(cur, t)
          store.put_customer(cur)
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
  local items, status, body = root_items(req, "customer")
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
  c = locked(c, function()
    local cur = store.customer(c.id)
    local new_type = t.type and tostring(t.type):upper()
    if new_type == "NON_LOYALTY" and cur.type == "LOYALTY" then
      err = { code = "1046", message = "Loyalty customer cannot be made non-loyalty" }
      return cur
    end
    if new_type == "LOYALTY" then cur.type = "LOYALTY" end
    apply_profile(cur, t)
    store.put_customer(cur)
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

local GET_KINDS = { "mobile", "email", "external_id", "card_number", "id", "user_id" }

-- The first customer identifier in the query: kind, value; or nil, nil and the 400 reply.
local function identifier_arg(args)
  for _, k in ipairs(GET_KINDS) do
    if type(args[k]) == "string" and args[k] ~= "" then return k, args[k] end
  end
  return nil, nil, common.v11_error(400, 400, "Input is invalid: a customer identifier is required")
end

local function customer_get(req)
  local args = req.args
  local kind, values, bad_status, bad_body = identifier_arg(args)
  if not kind then return bad_status, bad_body end
  local flags = {
    points_summary = truthy(args.points_summary), subscriptions = truthy(args.subscriptions),
    user_id = truthy(args.user_id), transactions = truthy(args.transactions),
  }
  local out, ok_count, n = array {}, 0, 0
  for value in values:gmatch("[^,]+") do
    n = n + 1
    local c = store.find_customer(kind, value)
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
  local items, status, body = root_items(req, "subscription")
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
      c = locked(c, function()
        local cur = store.customer(c.id)
        apply_profile(cur, { subscriptions = { subscription = { { channel = channel, priority = priority,
          is_subscribed = subscribed } } } })
        store.put_customer(cur)
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
  for _, c in ipairs(store.each_customer()) do
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

-- Transactions ---------------------------------------------------------------------------------

local function line_items(t)
  local out = array {}
  for _, l in ipairs(list(type(t.line_items) == "table" and t.line_items.line_item)) do
    local attrs = array {}
    for _, a in ipairs(list(type(l.attributes) == "table" and l.attributes.attribute)) do
      attrs[#attrs + 1] = { name = a.name, value = a.value }
    end
    out[#out + 1] = {
      serial = l.serial, item_code = l.item_code, description = l.description, type = l.type,
      amount = tonumber(l.amount) or 0, qty = tonumber(l.qty), rate = tonumber(l.rate), value = tonumber(l.value),
      discount_value = tonumber(l.discount_value or l.discount), attributes = attrs,
      extended_fields = common.merge_fields(nil, l.extended_fields),
    }
  end
  return out
end

local function txn_failure(t, code, message)
  return { number = t.number, type = t.type and tostring(t.type):upper() or nil,
    item_status = item_status(false, code, message) }
end

local function store_txn(txn)
  store.set_json("txn:" .. txn.id, txn)
end

local function add_regular(req, t, number, amount)
  local cfg = req.cfg
  if store.get("bill:" .. number) then return txn_failure(t, 604, "Transaction number already exists") end
  local cust = type(t.customer) == "table" and t.customer or {}
  local c, kind = common.identify_v11(cust)
  if not c and not kind then return txn_failure(t, 606, "Customer identifier is required") end
  if not c then
    local err = valid_identifiers(cust)
    if err then return txn_failure(t, 646, "Auto-registration failed: " .. err.message) end
    c = register(req, cust)
  end
  -- Reserve the bill number first so that a concurrent duplicate cannot slip in.
  local id = inferred.TRANSACTION_ID_BASE + store.next_seq("txn")
  if not store.add("bill:" .. number, id) then return txn_failure(t, 604, "Transaction number already exists") end
  local ok, result = pcall(locked, c, function()
    local cur = store.customer(c.id)
    if cust.firstname then cur.firstname = tostring(cust.firstname) end
    if cust.lastname then cur.lastname = tostring(cust.lastname) end
    local points = engine.book_regular(store, cfg, cur, amount, number)
    cur.transactions[#cur.transactions + 1] = id
    store.put_customer(cur)
    store_txn({
      id = id, number = number, type = "REGULAR", amount = amount, gross_amount = tonumber(t.gross_amount),
      discount = tonumber(t.discount), billing_time = t.billing_time or store.now_string(),
      customer_id = cur.id, line_items = line_items(t),
      custom_fields = common.merge_fields(nil, t.custom_fields),
      extended_fields = common.merge_fields(nil, t.extended_fields),
      payment_details = list(type(t.payment_details) == "table" and t.payment_details.payment),
      points_awarded = points, points_reversed = 0, amount_returned = 0, attribution = req.attribution,
      source = t.source or "INSTORE", notes = t.notes, api = "v1.1",
    })
    return { cur, points }
  end)
  if not ok then
    store.delete("bill:" .. number)
    error(result, 0)
  end
  local cur, points = result[1], result[2]
  return {
    id = id, number = number, bill_client_id = "", type = "REGULAR",
    delivery_status = t.delivery_status or "DELIVERED", outlier_status = t.outlier_status or "NORMAL",
    customer = common.customer_txn_v11(cfg, cur),
    -- The documented reply (S-V11 transaction/add) has coupon side effects and no points effect:
    -- points show only in the customer's after-state balance.
    side_effects = { effect = array {} },
    source = t.source or "INSTORE",
    item_status = item_status(true, 600, "Transaction added successfully"),
  }, points
end
_M.add_regular = add_regular

local RETURN_TYPES = { FULL = true, AMOUNT = true, LINE_ITEM = true }

local function add_return(req, t, number, amount)
  local cfg = req.cfg
  local return_type = tostring(t.return_type or ""):upper()
  if not RETURN_TYPES[return_type] then return txn_failure(t, 605, "Invalid return type") end
  local original_id = store.get("bill:" .. number)
  local original = original_id and store.get_json("txn:" .. original_id)
  if not original then return txn_failure(t, 624, "No matching bill found for the return") end
  local c = store.customer(original.customer_id)
  if not c then return txn_failure(t, 611, "Customer not found") end
  local lines = line_items(t)
  local result = locked(c, function()
    original = store.get_json("txn:" .. original_id)
    local refusal = engine.return_error(original, return_type, amount, lines, inferred)
    if refusal then return { refused = refusal } end
    local cur = store.customer(c.id)
    local points, returned_amount = engine.return_points(cfg, original, return_type, amount, lines)
    if return_type == "FULL" then original.fully_returned = true end
    original.return_kinds = original.return_kinds or {}
    original.return_kinds[return_type] = true
    local id = inferred.TRANSACTION_ID_BASE + store.next_seq("txn")
    engine.book_return(store, cur, original, points, returned_amount, number)
    cur.transactions[#cur.transactions + 1] = id
    store.put_customer(cur)
    store_txn(original)
    store_txn({
      id = id, number = number, type = "RETURN", return_type = return_type, amount = returned_amount,
      billing_time = t.billing_time or store.now_string(), purchase_time = t.purchase_time,
      customer_id = cur.id, parent_id = original.id, line_items = lines, points_deducted = points,
      custom_fields = common.merge_fields(nil, t.custom_fields), attribution = req.attribution, api = "v1.1",
    })
    return { cur, points, id }
  end)
  if result.refused then return txn_failure(t, result.refused.code, result.refused.message) end
  local cur, points, id = result[1], result[2], result[3]
  return {
    id = id, number = number, bill_client_id = "", type = "RETURN", return_type = return_type,
    customer = common.customer_txn_v11(cfg, cur),
    points_deducted = tostring(points), points_balance = tostring(cur.loyalty_points),
    side_effects = { effect = array {} }, source = t.source or "INSTORE",
    item_status = item_status(true, 600, "Transaction added successfully"),
  }
end

local function add_not_interested(req, t, number, amount)
  if store.get("bill:" .. number) then return txn_failure(t, 604, "Transaction number already exists") end
  local id = inferred.TRANSACTION_ID_BASE + store.next_seq("txn")
  if not store.add("bill:" .. number, id) then return txn_failure(t, 604, "Transaction number already exists") end
  store_txn({
    id = id, number = number, type = "NOT_INTERESTED", amount = amount, line_items = line_items(t),
    billing_time = t.billing_time or store.now_string(), custom_fields = common.merge_fields(nil, t.custom_fields),
    attribution = req.attribution, points_awarded = 0, api = "v1.1",
  })
  return { id = id, number = number, bill_client_id = "", type = "NOT_INTERESTED",
    item_status = item_status(true, 600, "Transaction added successfully") }
end

local function transaction_add(req)
  local items, status, body = root_items(req, "transaction")
  if not items then return status, body end
  local out, ok_count = array {}, 0
  for _, t in ipairs(items) do
    local kind = tostring(t.type or ""):lower()
    local number = t.number ~= nil and tostring(t.number) or ""
    local amount = tonumber(t.amount)
    local item
    if number == "" then
      item = txn_failure(t, 602, "Invalid transaction number")
    elseif amount == nil or amount < 0 then
      item = txn_failure(t, 601, "Invalid transaction amount")
    elseif kind == "regular" then
      item = add_regular(req, t, number, amount)
    elseif kind == "return" then
      item = add_return(req, t, number, amount)
    elseif kind == "not_interested" then
      item = add_not_interested(req, t, number, amount)
    else
      item = txn_failure(t, 605, "Invalid transaction type")
    end
    if item.item_status.success == "true" then ok_count = ok_count + 1 end
    out[#out + 1] = item
  end
  local st = common.v11_batch_status(ok_count, #items, false)
  if #items == 1 then st.total, st.success_count = nil, nil end
  return 200, { response = { status = st, transactions = { transaction = out } } }
end

local function transaction_get(req)
  local number, id = req.args.number, req.args.id
  if (type(number) ~= "string" or number == "") and (type(id) ~= "string" or id == "") then
    return common.v11_error(400, 400, "Input is invalid: number or id is required")
  end
  local txn_id = id or store.get("bill:" .. number)
  local t = txn_id and store.get_json("txn:" .. txn_id)
  if not t then
    local e = inferred.V11_TRANSACTION_NOT_FOUND
    return 200, { response = { status = common.v11_batch_status(0, 1, true), transactions = { transaction = array {
      { number = number, id = id, item_status = item_status(false, e.code, e.message) } } } } }
  end
  local c = t.customer_id and store.customer(t.customer_id)
  local lines = array {}
  for _, l in ipairs(t.line_items or {}) do
    lines[#lines + 1] = { serial = l.serial, item_code = l.item_code, description = l.description,
      amount = l.amount, qty = l.qty, rate = l.rate, value = l.value,
      attributes = { attribute = array(l.attributes or {}) } }
  end
  local out = {
    id = t.id, number = t.number, type = t.type, amount = tostring(t.amount or 0),
    gross_amount = t.gross_amount and tostring(t.gross_amount) or "",
    discount = t.discount and tostring(t.discount) or "",
    billing_time = t.billing_time, store = t.attribution and t.attribution.store or "",
    till = t.attribution and t.attribution.till or "",
    points = { awarded = tostring(t.points_awarded or 0),
      deducted = tostring(t.points_deducted or t.points_reversed or 0) },
    customer = c and { user_id = tostring(c.id), mobile = c.mobile or "", email = c.email or "",
      external_id = c.external_id or "", firstname = c.firstname, lastname = c.lastname } or {},
    line_items = { line_item = lines }, custom_fields = common.fields(t.custom_fields),
    item_status = item_status(true, 600, "Transaction retrieved successfully"),
  }
  return 200, { response = { status = common.v11_batch_status(1, 1, true),
    transactions = { transaction = array { out } } } }
end

local function return_rows(t)
  local out = array {}
  for _, l in ipairs(t.line_items or {}) do
    out[#out + 1] = { serial = l.serial, item_code = l.item_code, qty = l.qty, amount = l.amount }
  end
  return out
end

-- A customer's bills and returns, newest first; `number` narrows to one bill.
local function customer_transactions(req)
  local args = req.args
  local kind, value, bad_status, bad_body = identifier_arg(args)
  if not kind then return bad_status, bad_body end
  local c = store.find_customer(kind, value)
  if not c then
    local nf = inferred.V11_CUSTOMER_GET_NOT_FOUND
    return 200, { response = { status = common.v11_batch_status(0, 1, true),
      customer = { [kind] = value, item_status = item_status(false, nf.code, nf.message, {}) } } }
  end
  local number = type(args.number) == "string" and args.number ~= "" and args.number or nil
  local shape = inferred.V11_CUSTOMER_TRANSACTIONS
  local limit = tonumber(args.limit)
  if not limit or limit < 1 or limit % 1 ~= 0 then limit = shape.default_limit end
  local offset = tonumber(args.offset)
  if not offset or offset < 0 or offset % 1 ~= 0 then offset = 0 end
  local matched = {}
  local ids = c.transactions or {}
  for i = #ids, 1, -1 do
    local t = store.get_json("txn:" .. ids[i])
    if t and (not number or t.number == number) then matched[#matched + 1] = t end
  end
  local out = array {}
  for i = offset + 1, math.min(#matched, offset + limit) do
    local t = matched[i]
    local pts = t.type == "RETURN" and { issued = "0", redeemed = "0", returned = tostring(t.points_deducted or 0) }
                or { issued = tostring(t.points_awarded or 0), redeemed = "0",
                     returned = tostring(t.points_reversed or 0) }
    pts.expired, pts.program_id = "0", tostring(req.cfg.program.id)
    out[#out + 1] = {
      id = tostring(t.id), number = t.number, type = t.type, return_type = t.return_type or "",
      amount = tostring(t.amount or 0), outlier_status = "NORMAL", delivery_status = "DELIVERED",
      notes = t.notes or "", billing_time = t.billing_time,
      gross_amount = tostring(t.gross_amount or t.amount or 0), discount = tostring(t.discount or 0),
      store = t.attribution and t.attribution.store or "", points = pts,
      custom_fields = common.fields(t.custom_fields), extended_fields = common.fields(t.extended_fields),
      coupons = array {}, basket_size = #(t.line_items or {}),
      line_items = { line_item = t.type == "RETURN" and inferred.V11_RETURN_ROWS_HAVE_LINES and return_rows(t)
        or array {} },
    }
  end
  return 200, { response = { status = common.v11_status(true, 200, "Success"), customer = {
    firstname = c.firstname, lastname = c.lastname, user_id = tostring(c.id), mobile = c.mobile or "",
    email = c.email or "", external_id = c.external_id or "",
    lifetime_points = c.lifetime_points, lifetime_purchases = c.lifetime_purchases, loyalty_points = c.loyalty_points,
    current_slab = c.slab, registered_on = c.registered_on, updated_on = c.updated_on, type = c.type,
    source = (c.source or ""):lower(),
    count = #matched, start = out[1] and out[1].id or "", rows = tostring(#out),
    transactions = { transaction = out },
    item_status = item_status(true, shape.code, shape.message, {}),
  } } }
end

-- Points ---------------------------------------------------------------------------------------

local POINT_KINDS = { "mobile", "email", "external_id", "card_number", "card_external_id", "id", "user_id" }

local function customer_from_args(args)
  local t = {}
  for _, k in ipairs(POINT_KINDS) do if type(args[k]) == "string" then t[k] = args[k] end end
  return common.identify_v11(t)
end

local function ids_of(c, kind, value)
  if not c then return { [kind or "mobile"] = value } end
  return { mobile = c.mobile or "", email = c.email or "", external_id = c.external_id or "" }
end

local function points_isredeemable(req)
  local cfg, args = req.cfg, req.args
  local c, kind, value = customer_from_args(args)
  local points = tonumber(args.points)
  local ratio = cfg.program.points_currency_ratio or 1
  local r = ids_of(c, kind, value)
  r.points = points or args.points
  r.input_type = "points"
  r.points_currency_ratio = tostring(ratio)
  local err
  local pid = inferred.V11_PROGRAM_ID_REQUIRED
  if not kind then
    return common.v11_error(400, 400, "Input is invalid: a customer identifier is required")
  elseif tostring((type(args.program_id) == "table" and args.program_id[1]) or args.program_id or "")
         ~= tostring(cfg.program.id) then
    return common.v11_error(pid.http, pid.code, args.program_id and "Input is invalid: unknown program_id"
                            or pid.message)
  elseif not c then
    err = { code = 816, message = "Customer not found for organization" }
  else
    err = engine.redemption_error(cfg, c, points)
  end
  if err then
    r.is_redeemable = "false"
    r.item_status = item_status(false, err.code, err.message)
    local http = inferred.V11_HTTP_BY_CODE[err.code] or inferred.V11_ITEM_FAILURE_HTTP_STATUS
    return http, { response = { status = common.v11_status(false, inferred.V11_ALL_FAILED.code,
      inferred.V11_ALL_FAILED.message), points = { redeemable = r } } }
  end
  r.is_redeemable = "true"
  r.points_redeem_value = points * ratio
  r.points_redeem_local_value = points * ratio
  local warnings
  if truthy(args.issue_otp) then
    local rec = otp.issue(cfg, otp.customer_subject(c), "POINTS", { points = points, via = "isredeemable" })
    if not rec then warnings = { 876 } end
  end
  r.item_status = item_status(true, 800, "Points can be redeemed", warnings)
  return 200, { response = { status = common.v11_status(true, 200, "Success"), points = { redeemable = r } } }
end

local function points_validationcode(req)
  local cfg, args = req.cfg, req.args
  local c, kind, value = customer_from_args(args)
  if not kind then return common.v11_error(400, 400, "Input is invalid: a customer identifier is required") end
  local points = tonumber(args.points)
  local code = { mobile = c and c.mobile or value, points = tostring(args.points or "") }
  local err
  if not c then
    err = { code = "816", message = "Customer not found for organization" }
  elseif not points or (points <= 0 and inferred.V11_VALIDATIONCODE_POSITIVE_ONLY) then
    err = { code = "801", message = "Invalid points: points must be positive" }
  else
    code.user_id = tostring(c.id)
    if not otp.issue(cfg, otp.customer_subject(c), "POINTS", { points = points, via = "validationcode" }) then
      err = { code = tostring(inferred.V11_OTP_LIMIT.code), message = inferred.V11_OTP_LIMIT.message }
    end
  end
  if err then
    code.item_status = item_status(false, err.code, err.message)
    return 200, { response = { status = { success = "false", code = tostring(inferred.V11_ALL_FAILED.code),
      message = inferred.V11_ALL_FAILED.message }, validation_code = { code = code } } }
  end
  code.item_status = item_status(true, "200", "Validation Code Issued by SMS/Email")
  return 200, { response = { status = { success = "true", code = "200", message = "Operation Successful" },
    validation_code = { code = code } } }
end

local function redeem_one(req, t, skip_validation)
  local cfg = req.cfg
  local c, kind, value = common.identify_v11(type(t.customer) == "table" and t.customer or {})
  local ids = ids_of(c, kind, value)
  local function fail(code, message)
    ids.points_redeemed = t.points_redeemed ~= nil and tostring(t.points_redeemed) or ""
    ids.item_status = item_status(false, code, message)
    return ids
  end
  if not c then return fail(816, "Customer not found for organization") end
  local ext = t.external_reference_number ~= nil and tostring(t.external_reference_number) or nil
  if ext and inferred.REDEEM_DUPLICATE_RETURNS_ORIGINAL then
    local original = store.get_json("redext:" .. ext)
    if original then return original end
  end
  local points = tonumber(t.points_redeemed)
  local err = engine.redemption_error(cfg, c, points)
  if err and (err.code == 801 or err.code == 878) then return fail(err.code, err.message) end
  local subject = otp.customer_subject(c)
  if not skip_validation and not otp.matches(subject, "POINTS", t.validation_code) then
    return fail(808, "Invalid validation code")
  end
  if err then return fail(err.code, err.message) end
  local ratio = cfg.program.points_currency_ratio or 1
  local item = locked(c, function()
    local cur = store.customer(c.id)
    local again = engine.redemption_error(cfg, cur, points)
    if again then return fail(again.code, again.message) end
    local rid
    repeat
      rid = common.random_id(inferred.REDEMPTION_ID_ALPHABET, 6)
    until store.add("red:" .. rid, "{}")
    engine.book_redemption(store, cur, points, rid)
    store.put_customer(cur)
    if not skip_validation then otp.consume(subject, "POINTS") end
    local n = store.next_seq("red")
    store.set("redlist:" .. n, rid)
    local summary_id = 27141800 + n
    store.set_json("red:" .. rid, {
      id = rid, customer_id = cur.id, points = points, value = points * ratio, external_reference_number = ext,
      transaction_number = t.transaction_number, notes = t.notes, purpose = t.redemption_purpose,
      custom_fields = common.merge_fields(nil, t.custom_fields), attribution = req.attribution,
      validated = not skip_validation, reversed = false, at = store.now_string(), api = "v1.1",
    })
    return {
      mobile = cur.mobile or "", email = cur.email or "", external_id = cur.external_id or "",
      user_id = tostring(cur.id), redemption_id = rid, points_redeemed = tostring(points),
      redemption_purpose = t.redemption_purpose or "", redeemed_value = points * ratio,
      redeemed_local_value = points * ratio, balance = cur.loyalty_points,
      side_effects = { effect = array { {
        id = summary_id, case_value = "false", num_points = points, currency_value = points * ratio,
        validation_code = skip_validation and "" or tostring(t.validation_code),
        points_redemption_summary_id = tostring(summary_id),
        redeemed_on_bill_number = t.transaction_number and tostring(t.transaction_number) or "",
        redeemed_on_bill_id = -1, type = "points" } } },
      item_status = item_status(true, 800, "Points Redeemed"),
    }
  end)
  if ext and item.item_status.success == "true" then store.set_json("redext:" .. ext, item) end
  return item
end

local function points_redeem(req)
  local items, status, body = root_items(req, "redeem")
  if not items then return status, body end
  local skip = truthy(req.args.skip_validation)
  local out, ok_count = array {}, 0
  for _, t in ipairs(items) do
    local item = redeem_one(req, t, skip)
    if item.item_status.success == "true" then ok_count = ok_count + 1 end
    out[#out + 1] = item
  end
  local st = common.v11_batch_status(ok_count, #items, false)
  if #items == 1 then st.total, st.success_count = nil, nil end
  local http = inferred.V11_ITEM_FAILURE_HTTP_STATUS
  if ok_count == 0 and #out == 1 then
    http = inferred.V11_HTTP_BY_CODE[tonumber(out[1].item_status.code)] or http
  end
  return http, { response = { status = st, responses = { points = #out == 1 and out[1] or out } } }
end

-- Coupons --------------------------------------------------------------------------------------

local function coupon_problem(c, cp, kind)
  if not kind then return nil end
  if not c then return { "701", "Customer not found" } end
  if not cp then return { "702", "Invalid coupon code" } end
  if cp.owner_id and cp.owner_id ~= c.id then return { "703", "Coupon not issued to this customer" } end
  if cp.valid_till < os.date("!%Y-%m-%d") then return { "712", "Coupon has expired" } end
  return nil
end

local function series_info(cp)
  return { description = cp.description, discount_code = cp.discount_code, valid_till = cp.valid_till,
    discount_type = cp.discount_type, discount_value = tostring(cp.discount_value), detailed_info = cp.detailed_info }
end

local function coupon_isredeemable(req)
  local args = req.args
  local c, kind, value = customer_from_args(args)
  if not kind or type(args.code) ~= "string" then
    return common.v11_error(400, 400, "Input is invalid: customer identifier and code are required")
  end
  local cp = store.get_json("coupon:" .. args.code)
  local r = { [kind] = value, code = args.code }
  local problem = coupon_problem(c, cp, kind)
  if problem then
    r.is_redeemable = "false"
    r.item_status = { status = "false", code = problem[1], message = problem[2] }
  elseif cp.redeemed then
    -- As documented: a redeemed voucher answers status "true" with code 706.
    r.is_redeemable = "false"
    r.item_status = { status = "true", code = "706", message = "Cannot redeem same voucher multiple times" }
  else
    r.is_redeemable = "true"
    r.item_status = { status = "true", code = "700", message = "Coupon can be redeemed" }
  end
  if cp and (truthy(args.details) or args.details == "extended") then r.series_info = series_info(cp) end
  return 200, { response = { status = { success = "true", code = "200", message = "SUCCESS" },
    coupons = { redeemable = r } } }
end

local function coupon_redeem_one(req, t)
  local c, kind, value = common.identify_v11(type(t.customer) == "table" and t.customer or {})
  local code = t.code or t.id
  code = code ~= nil and tostring(code) or nil
  local txn = list(t.transaction)[1] or {}
  local function fail(problem)
    return { code = code, customer = ids_of(c, kind, value), item_status = item_status(false, problem[1], problem[2]) }
  end
  if not code then return fail { "702", "Coupon code is required" } end
  local problem = coupon_problem(c, store.get_json("coupon:" .. code), kind or "mobile")
  if problem then return fail(problem) end
  return locked(c, function()
    local cp = store.get_json("coupon:" .. code)
    if cp.redeemed then return fail { "711", "Coupon is redeemed already" } end
    local n = store.next_seq("couponred")
    cp.redeemed = true
    cp.redemption = { id = tostring(4577800 + n), customer_id = c.id, transaction_number = txn.number,
      amount = txn.amount, attribution = req.attribution, custom_fields = common.merge_fields(nil, t.custom_fields),
      at = store.now_string() }
    store.set_json("coupon:" .. code, cp)
    return {
      customer = ids_of(c), redemptionId = cp.redemption.id, code = cp.code, discount_code = cp.discount_code,
      series_code = cp.series_code, is_absolute = cp.discount_type == "ABS" and "true" or "false",
      coupon_value = tostring(cp.discount_value),
      transaction = { amount = txn.amount and tostring(txn.amount) or "",
        number = txn.number and tostring(txn.number) or "" },
      series_info = array {}, side_effects = array {}, -- [DOC S-V11 _coupon.md "Redeem Coupon"]: both []
      item_status = item_status(true, "700", "Coupon processing successful"),
    }
  end)
end

local function coupon_redeem(req)
  local items, status, body = root_items(req, "coupon")
  if not items then return status, body end
  local out, ok_count = array {}, 0
  for _, t in ipairs(items) do
    local item = coupon_redeem_one(req, t)
    if item.item_status.success == "true" then ok_count = ok_count + 1 end
    out[#out + 1] = item
  end
  return 200, { response = { status = common.v11_batch_status(ok_count, #items, true),
    coupons = { coupon = #out == 1 and out[1] or out } } }
end

_M.routes = {
  ["/v1.1/customer/add"] = { "POST", customer_add },
  ["/v1.1/customer/update"] = { "POST", customer_update },
  ["/v1.1/customer/get"] = { "GET", customer_get },
  ["/v1.1/customer/search"] = { "GET", customer_search },
  ["/v1.1/customer/subscriptions"] = { "POST", customer_subscriptions },
  ["/v1.1/transaction/add"] = { "POST", transaction_add },
  ["/v1.1/transaction/get"] = { "GET", transaction_get },
  ["/v1.1/customer/transactions"] = { "GET", customer_transactions },
  ["/v1.1/points/isredeemable"] = { "GET", points_isredeemable },
  ["/v1.1/points/validationcode"] = { "GET", points_validationcode },
  ["/v1.1/points/redeem"] = { "POST", points_redeem },
  ["/v1.1/coupon/isredeemable"] = { "GET", coupon_isredeemable },
  ["/v1.1/coupon/redeem"] = { "POST", coupon_redeem },
}

_M.register = register

return _M

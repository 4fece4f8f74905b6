-- Capillary v1.1 transactions: transaction/add (regular bills with auto-registration, returns,
-- not-interested bills), transaction/get and a customer's bills, customer/transactions.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.capillary.store")
local engine = require("loyalty.sandbox.capillary.engine")
local common = require("loyalty.sandbox.capillary.common")
local inferred = require("loyalty.sandbox.capillary.inferred")
local input = require("loyalty.sandbox.capillary.v11.input")
local customer = require("loyalty.sandbox.capillary.v11.customer")

local _M = {}
local array, list, item_status = json.array, common.list, common.item_status

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
    local err = customer.valid_identifiers(cust)
    if err then return txn_failure(t, 646, "Auto-registration failed: " .. err.message) end
    c = customer.register(req, cust)
  end
  -- Reserve the bill number first so that a concurrent duplicate cannot slip in.
  local id = inferred.TRANSACTION_ID_BASE + store.next_seq("txn")
  if not store.add("bill:" .. number, id) then return txn_failure(t, 604, "Transaction number already exists") end
  local ok, result = pcall(cstore.locked, c, function()
    local cur = cstore.customer(c.id)
    if cust.firstname then cur.firstname = tostring(cust.firstname) end
    if cust.lastname then cur.lastname = tostring(cust.lastname) end
    local points = engine.book_regular(cfg, cur, amount, number)
    cur.transactions[#cur.transactions + 1] = id
    cstore.put_customer(cur)
    store_txn({
      id = id, number = number, type = "REGULAR", amount = amount, gross_amount = tonumber(t.gross_amount),
      discount = tonumber(t.discount), billing_time = t.billing_time or cstore.now_string(),
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

local RETURN_TYPES = { FULL = true, AMOUNT = true, LINE_ITEM = true }

local function add_return(req, t, number, amount)
  local cfg = req.cfg
  local return_type = tostring(t.return_type or ""):upper()
  if not RETURN_TYPES[return_type] then return txn_failure(t, 605, "Invalid return type") end
  local original_id = store.get("bill:" .. number)
  local original = original_id and store.get_json("txn:" .. original_id)
  if not original then return txn_failure(t, 624, "No matching bill found for the return") end
  local c = cstore.customer(original.customer_id)
  if not c then return txn_failure(t, 611, "Customer not found") end
  local lines = line_items(t)
  local result = cstore.locked(c, function()
    original = store.get_json("txn:" .. original_id)
    local refusal = engine.return_error(original, return_type, amount, lines, inferred)
    if refusal then return { refused = refusal } end
    local cur = cstore.customer(c.id)
    local points, returned_amount = engine.return_points(cfg, original, return_type, amount, lines)
    if return_type == "FULL" then original.fully_returned = true end
    original.return_kinds = original.return_kinds or {}
    original.return_kinds[return_type] = true
    local id = inferred.TRANSACTION_ID_BASE + store.next_seq("txn")
    engine.book_return(cur, original, points, returned_amount, number)
    cur.transactions[#cur.transactions + 1] = id
    cstore.put_customer(cur)
    store_txn(original)
    store_txn({
      id = id, number = number, type = "RETURN", return_type = return_type, amount = returned_amount,
      billing_time = t.billing_time or cstore.now_string(), purchase_time = t.purchase_time,
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
    billing_time = t.billing_time or cstore.now_string(), custom_fields = common.merge_fields(nil, t.custom_fields),
    attribution = req.attribution, points_awarded = 0, api = "v1.1",
  })
  return { id = id, number = number, bill_client_id = "", type = "NOT_INTERESTED",
    item_status = item_status(true, 600, "Transaction added successfully") }
end

local function add_one(req, t)
  local kind = tostring(t.type or ""):lower()
  local number = t.number ~= nil and tostring(t.number) or ""
  local amount = tonumber(t.amount)
  if number == "" then return txn_failure(t, 602, "Invalid transaction number") end
  if amount == nil or amount < 0 then return txn_failure(t, 601, "Invalid transaction amount") end
  if kind == "regular" then return (add_regular(req, t, number, amount)) end
  if kind == "return" then return add_return(req, t, number, amount) end
  if kind == "not_interested" then return add_not_interested(req, t, number, amount) end
  return txn_failure(t, 605, "Invalid transaction type")
end

local function transaction_add(req)
  local out, ok_count, body = input.each_item(req, "transaction", function(t) return add_one(req, t) end)
  if not out then return ok_count, body end
  local st = common.v11_batch_status(ok_count, #out, false)
  if #out == 1 then st.total, st.success_count = nil, nil end
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
  local c = t.customer_id and cstore.customer(t.customer_id)
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
  local kind, value, bad_status, bad_body = input.identifier_arg(args)
  if not kind then return bad_status, bad_body end
  local c = cstore.find_customer(kind, value)
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

_M.add_regular = add_regular
_M.add, _M.get, _M.of_customer = transaction_add, transaction_get, customer_transactions

return _M

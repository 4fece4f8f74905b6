-- Capillary v2 POST /v2/transactions: regular bills and returns, booked by the v1.1 transaction
-- module with the v2 fields mapped onto it; points as sideEffects.
local json = require("loyalty.sandbox.json")
local cstore = require("loyalty.sandbox.capillary.store")
local common = require("loyalty.sandbox.capillary.common")
local inferred = require("loyalty.sandbox.capillary.inferred")
local transaction = require("loyalty.sandbox.capillary.v11.transaction")
local v2customer = require("loyalty.sandbox.capillary.v2.customer")

local _M = {}
local array = json.array
local H = inferred.V2_HTTP

local function transactions_post(req)
  local body, status, err = common.v2_body(req)
  if not body then return status, err end
  local c, s2, e2 = v2customer.lookup(req)
  if not c then
    if s2 == H.not_found then return common.v2_error(H.invalid, 8015, "No customer found for the identifiers") end
    return s2, e2
  end
  local ttype = tostring(body.type or "REGULAR"):upper()
  local number = body.billNumber ~= nil and tostring(body.billNumber) or ""
  local amount = tonumber(body.billAmount)
  if number == "" then return common.v2_error(H.invalid, 602, "Invalid transaction number") end
  if amount == nil or amount < 0 then return common.v2_error(H.invalid, 601, "Invalid transaction amount") end
  -- Reuse the v1.1 booking with the v2 fields mapped onto it.
  local lines = {}
  for i, l in ipairs(type(body.lineItemsV2) == "table" and body.lineItemsV2 or {}) do
    local attrs = {}
    for k, v in pairs(type(l.attributes) == "table" and l.attributes or {}) do
      attrs[#attrs + 1] = { name = k, value = v }
    end
    lines[i] = { serial = l.serial or i, item_code = l.itemCode, amount = l.amount, qty = l.qty, rate = l.rate,
      description = l.description, attributes = { attribute = attrs }, extended_fields = l.extendedFields }
  end
  local t = {
    number = number, amount = amount, gross_amount = body.grossAmount, discount = body.discount,
    billing_time = body.billingDate, notes = body.note, delivery_status = body.deliveryStatus,
    custom_fields = body.customFields, extended_fields = body.extendedFields,
    customer = { id = tostring(c.id) }, line_items = { line_item = lines },
    return_type = body.returnType, purchase_time = body.purchaseTime, source = req.args.source,
  }
  local item, awarded
  if ttype == "REGULAR" then
    item, awarded = transaction.add_regular(req, t, number, amount)
  elseif ttype == "RETURN" then
    t.type = "return"
    local _, resp = transaction.add({ cfg = req.cfg, attribution = req.attribution,
      body = { root = { transaction = { t } } }, args = {} })
    item = resp.response.transactions.transaction[1]
  else
    return common.v2_error(H.invalid, 605, "Invalid transaction type")
  end
  if item.item_status.success ~= "true" then
    return common.v2_error(H.invalid, item.item_status.code, item.item_status.message)
  end
  local cur = cstore.customer(c.id)
  local effects = array {}
  if ttype == "REGULAR" then
    effects[1] = { entityType = "USER", rawAwardedPoints = awarded, awardedPoints = awarded, type = "points" }
  else
    local deducted = tonumber(item.points_deducted)
    effects[1] = { entityType = "USER", rawAwardedPoints = -deducted, awardedPoints = -deducted, type = "points" }
  end
  return 200, { createdId = item.id, warnings = array {}, errors = array {}, sideEffects = effects,
    customerInfo = { firstName = cur.firstname, lastName = cur.lastname } }
end

_M.post = transactions_post

return _M

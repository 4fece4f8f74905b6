-- Capillary v2 in the sandbox (reference §3.3, §4.2, §4.4, §4.5, §4.7): customers, transactions,
-- points/reverse and OTPs, booked through the v1.1 modules where the two APIs share a write.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.capillary.store")
local engine = require("loyalty.sandbox.capillary.engine")
local common = require("loyalty.sandbox.capillary.common")
local otp = require("loyalty.sandbox.capillary.otp")
local inferred = require("loyalty.sandbox.capillary.inferred")
local customer = require("loyalty.sandbox.capillary.v11.customer")
local transaction = require("loyalty.sandbox.capillary.v11.transaction")

local _M = {}
local array = json.array
local H = inferred.V2_HTTP

local SOURCES = {}
for s in ("INSTORE MARTJACK WECHAT FACEBOOK WEB_ENGAGE TMALL TAOBAO JD ECOMMERCE WEBSITE LINE MOBILE_APP ALL")
    :gmatch("%S+") do SOURCES[s] = true end

local function body_object(req)
  if type(req.body) ~= "table" then return nil, common.v2_error(400, 400, "Invalid input: JSON object expected") end
  return req.body
end

-- Customers ------------------------------------------------------------------------------------

local V11_NAME = { mobile = "mobile", email = "email", externalId = "external_id", externalid = "external_id",
  cardnumber = "card_number", card = "card_number" }

local function profile_fields(c, body)
  local p = type(body.profiles) == "table" and body.profiles[1] or {}
  if p.firstName then c.firstname = tostring(p.firstName) end
  if p.lastName then c.lastname = tostring(p.lastName) end
  if type(p.fields) == "table" then c.custom_fields = common.merge_fields(c.custom_fields, p.fields) end
  if type(body.extendedFields) == "table" then
    c.extended_fields = common.merge_fields(c.extended_fields, body.extendedFields)
  end
  local lt = type(body.loyaltyInfo) == "table" and body.loyaltyInfo.loyaltyType
  if lt and tostring(lt):lower() == "loyalty" then c.type = "LOYALTY" end
  c.updated_on = cstore.now_string()
  return p
end

local function customers_post(req)
  local body, status, err = body_object(req)
  if not body then return status, err end
  local p = type(body.profiles) == "table" and body.profiles[1]
  if type(p) ~= "table" or type(p.identifiers) ~= "table" or not p.identifiers[1] then
    return common.v2_error(H.invalid, 8013, "Invalid identifier: profiles[0].identifiers is required")
  end
  local source = tostring(p.source or "INSTORE"):upper()
  if not SOURCES[source] or source == "ALL" then return common.v2_error(H.invalid, 8012, "Invalid source") end
  local fields, existing = {}, nil
  for _, id in ipairs(p.identifiers) do
    local kind = V11_NAME[id.type or ""]
    if not kind or id.value == nil or id.value == "" then
      return common.v2_error(H.invalid, 8013, "Invalid identifier type or value: " .. tostring(id.type))
    end
    fields[kind] = tostring(id.value)
    existing = existing or cstore.find_customer(kind, tostring(id.value))
  end
  local warnings = array {}
  local c
  if existing then
    for _, s in ipairs(existing.sources or {}) do
      if s == source then
        local e = inferred.V2_CUSTOMER_EXISTS
        return common.v2_error(H.conflict, e.code, e.message)
      end
    end
    -- Documented: the same identifier in another source merges the accounts (warning 8050).
    c = cstore.locked(existing, function()
      local cur = cstore.customer(existing.id)
      cur.sources[#cur.sources + 1] = source
      for kind, v in pairs(fields) do if not cur[kind] or cur[kind] == "" then cur[kind] = v end end
      profile_fields(cur, body)
      cstore.put_customer(cur)
      return cur
    end)
    warnings[1] = { status = false, code = 8050, message = "Same Customer found in other sources,Combining" }
  else
    local lt = type(body.loyaltyInfo) == "table" and tostring(body.loyaltyInfo.loyaltyType or "loyalty") or "loyalty"
    fields.type = lt:lower() == "non_loyalty" and "NON_LOYALTY" or "LOYALTY"
    fields.source = source
    fields.associated_with = body.associatedWith
    c = customer.register(req, fields)
    profile_fields(c, body)
    c.type = fields.type
    cstore.put_customer(c)
  end
  return 200, { createdId = c.id, warnings = warnings, sideEffects = array {} }
end

local function customer_by_path(req)
  local id = tonumber(req.path_id)
  local c = id and cstore.customer(id)
  if not c then
    local e = inferred.V2_BAD_CUSTOMER_ID
    return nil, common.v2_error(H.not_found, e.code, e.message)
  end
  return c
end

local function customers_put(req)
  local body, status, err = body_object(req)
  if not body then return status, err end
  local c, s2, e2 = customer_by_path(req)
  if not c then return s2, e2 end
  local lt = type(body.loyaltyInfo) == "table" and body.loyaltyInfo.loyaltyType
  if lt and tostring(lt):lower() == "non_loyalty" and c.type == "LOYALTY" then
    return common.v2_error(H.invalid, 1046, "Loyalty customer cannot be made non-loyalty")
  end
  c = cstore.locked(c, function()
    local cur = cstore.customer(c.id)
    profile_fields(cur, body)
    cstore.put_customer(cur)
    return cur
  end)
  return 200, { createdId = c.id, warnings = array {}, sideEffects = array {} }
end

local function lookup_args(req)
  local a = req.args
  local source = tostring(a.source or ""):upper()
  if source == "" or not SOURCES[source] then
    return nil, common.v2_error(H.invalid, 8011, "Invalid source or account")
  end
  if type(a.identifierName) ~= "string" or type(a.identifierValue) ~= "string" or a.identifierValue == "" then
    return nil, common.v2_error(H.invalid, 8013, "Invalid identifier name or value")
  end
  local c, bad = common.find_v2(a.identifierName, a.identifierValue)
  if bad then return nil, common.v2_error(H.invalid, 8013, "Invalid identifierName") end
  if not c then return nil, common.v2_error(H.not_found, 8015, "No customer found with the given identifier") end
  if source ~= "ALL" then
    local in_source = false
    for _, s in ipairs(c.sources or {}) do in_source = in_source or s == source end
    if not in_source then return nil, common.v2_error(H.not_found, 8065, "Customer not found in the given source") end
  end
  return c
end

local function customers_lookup(req)
  local c, status, body = lookup_args(req)
  if not c then return status, body end
  return 200, { entity = c.id, warnings = array {} }
end

local function customers_get(req)
  local c, status, body = customer_by_path(req)
  if not c then return status, body end
  local cfg = req.cfg
  local ids = array {}
  for _, pair in ipairs { { "mobile", "mobile" }, { "email", "email" }, { "externalId", "external_id" },
                          { "cardnumber", "card_number" } } do
    if c[pair[2]] and c[pair[2]] ~= "" then ids[#ids + 1] = { type = pair[1], value = c[pair[2]] } end
  end
  local fields = {}
  for _, f in ipairs(c.custom_fields or {}) do fields[f.name] = f.value end
  local ext = {}
  for _, f in ipairs(c.extended_fields or {}) do ext[f.name] = f.value end
  local out = {
    id = c.id,
    profiles = array { { firstName = c.firstname, lastName = c.lastname, identifiers = ids,
      source = c.source, fields = fields } },
    loyaltyInfo = { loyaltyType = c.type == "LOYALTY" and "loyalty" or "non_loyalty" },
    extendedFields = ext, registeredOn = c.registered_on, warnings = array {},
  }
  local embed = "," .. tostring(req.args.embed or "") .. ","
  if embed:find(",points,", 1, true) then out.pointsSummary = engine.points_summary_v2(cfg, c) end
  if embed:find(",subscriptions,", 1, true) then
    local subs = array {}
    for _, s in ipairs(c.subscriptions or {}) do
      subs[#subs + 1] = { channel = s.channel, priority = s.priority,
        type = s.is_subscribed == "1" and "OPTIN" or "OPTOUT" }
    end
    out.subscriptionInfo = { subscriptions = subs }
  end
  return 200, out
end

-- Transactions ---------------------------------------------------------------------------------

local function transactions_post(req)
  local body, status, err = body_object(req)
  if not body then return status, err end
  local c, s2, e2 = lookup_args(req)
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

-- Points reverse -------------------------------------------------------------------------------

local function points_reverse(req)
  local body, status, err = body_object(req)
  if not body then return status, err end
  local rid, points = body.redemptionId, tonumber(body.pointsToBeReversed)
  if type(rid) ~= "string" or rid == "" or not points or points <= 0 then
    return common.v2_error(H.invalid, 901, "Invalid points or redemption id")
  end
  local red = store.get_json("red:" .. rid)
  if not red or not red.customer_id then return common.v2_error(H.invalid, 902, "Redemption id does not exist") end
  local ident = type(body.identifier) == "table" and body.identifier or {}
  local c = common.find_v2(ident.type, ident.value)
  if not c or c.id ~= red.customer_id then return common.v2_error(H.invalid, 904, "Invalid customer details") end
  local left = red.points - (red.points_reversed or (red.reversed and red.points or 0))
  if left <= 0 then return common.v2_error(H.invalid, 3802, "Redemption already reversed") end
  if points > left + 1e-9 then return common.v2_error(H.invalid, 901, "Invalid points: more than redeemed") end
  local result = cstore.locked(c, function()
    red = store.get_json("red:" .. rid)
    local now_left = red.points - (red.points_reversed or 0)
    if now_left <= 0 or points > now_left + 1e-9 then return nil end
    local cur = cstore.customer(c.id)
    local reversal_id = common.random_id(inferred.REDEMPTION_ID_ALPHABET, 6)
    engine.book_reversal(cur, points, rid)
    cstore.put_customer(cur)
    red.points_reversed = (red.points_reversed or 0) + points
    -- [INF] partial reversals (inferred.PARTIAL_REVERSALS): reversed once nothing is left
    red.reversed = red.points_reversed >= red.points
    red.reversals = red.reversals or {}
    red.reversals[#red.reversals + 1] = { id = reversal_id, points = points, at = cstore.now_string(),
                                          attribution = req.attribution }
    red.reversal = red.reversals[1]
    store.set_json("red:" .. rid, red)
    return reversal_id
  end)
  if not result then return common.v2_error(H.invalid, 3802, "Redemption already reversed") end
  return 200, { redemptionId = rid, pointsToBeReversed = points, orgId = req.cfg.org.id,
    identifier = { type = ident.type, value = ident.value }, customerId = c.id, pointsReversed = points,
    reversalId = result, warnings = array {} }
end

-- OTP ------------------------------------------------------------------------------------------

local ACTIONS = {}
for a in ("REGISTRATION POINTS COUPON GENERIC SUBSCRIPTION USERGROUP POINTSTRANSFER"):gmatch("%S+") do
  ACTIONS[a] = true
end
local ENTITY_TYPES = { email = "email", mobile = "mobile" }

local function otp_subject(entity_type, value)
  local kind = ENTITY_TYPES[tostring(entity_type or ""):lower()]
  local c = kind and cstore.find_customer(kind, tostring(value))
  if c then return otp.customer_subject(c), c end
  return otp.entity_subject(kind or entity_type, value)
end

local function otp_inputs(body)
  local errs = {}
  if not ACTIONS[tostring(body.action or ""):upper()] then
    errs[#errs + 1] = { code = 600, message = "\"Invalid or Null action passed\"" }
  end
  if not ENTITY_TYPES[tostring(body.entityType or ""):lower()] then
    errs[#errs + 1] = { code = 601, message = "\"Invalid or Null entity type passed\"" }
  end
  if body.entityValue == nil or body.entityValue == "" then
    errs[#errs + 1] = { code = 602, message = "\"Invalid or Null entity value passed\"" }
  end
  return errs
end

local function otp_generate(req)
  local body, status, err = body_object(req)
  if not body then return status, err end
  local errs = otp_inputs(body)
  if errs[1] then return common.v2_errors(H.invalid, errs) end
  local subject = otp_subject(body.entityType, body.entityValue)
  local rec = otp.issue(req.cfg, subject, tostring(body.action):upper(), { via = "v2", channels = body.channels })
  if not rec then
    return common.v2_error(H.rate_limited, 429,
      "Rate limit exceeded. A maximum of 10 OTPs can be generated for an user per day")
  end
  return 200, { createdId = rec.id, warnings = array {} }
end

local function otp_validate(req)
  local body, status, err = body_object(req)
  if not body then return status, err end
  local errs = otp_inputs(body)
  if body.code == nil or body.code == "" then
    errs[#errs + 1] = { code = 603, message = "\"Invalid or Null code passed\"" }
  end
  if errs[1] then return common.v2_errors(H.invalid, errs) end
  local subject = otp_subject(body.entityType, body.entityValue)
  local action = tostring(body.action):upper()
  if otp.matches(subject, action, body.code) then
    otp.consume(subject, action)
    return 200, { entity = true, warnings = array {} }
  end
  -- [DOC S-V2 _otp.md "Sample Failure Response"]: exactly {entity: false, warnings: []}.
  return 200, { entity = false, warnings = array {} }
end

local function otp_get(req)
  local a = req.args
  if type(a.identifierName) ~= "string" or type(a.identifierValue) ~= "string" then
    return common.v2_error(H.invalid, 8013, "Invalid identifier name or value")
  end
  local kind = common.V2_KINDS[a.identifierName] or a.identifierName
  local c = cstore.find_customer(kind, a.identifierValue)
  local subject = c and otp.customer_subject(c) or otp.entity_subject(kind, a.identifierValue)
  local rec = otp.current(subject, tostring(a.scope or "POINTS"):upper())
  if not rec then
    local e = inferred.V2_OTP_NOT_FOUND
    return common.v2_error(e.http, e.code, e.message)
  end
  return 200, { orgId = req.cfg.org.id, userId = c and c.id or -1, code = rec.code,
    validUpto = otp.iso8601(rec.valid_until), warnings = array {} }
end

_M.routes = {
  ["/v2/customers"] = { "POST", customers_post },
  ["/v2/customers/lookup"] = { "GET", customers_lookup },
  ["/v2/transactions"] = { "POST", transactions_post },
  ["/v2/points/reverse"] = { "POST", points_reverse },
  ["/v2/otp/generate"] = { "POST", otp_generate },
  ["/v2/otp/validate"] = { "POST", otp_validate },
  ["/v2/otp"] = { "GET", otp_get },
}

-- /v2/customers/{id}: GET reads, PUT updates.
_M.customer_id_routes = { GET = customers_get, PUT = customers_put }

return _M

-- Capillary v2 customers: POST /v2/customers (with the merge across sources), PUT and GET
-- /v2/customers/{id}, GET /v2/customers/lookup.
local json = require("loyalty.sandbox.json")
local cstore = require("loyalty.sandbox.capillary.store")
local engine = require("loyalty.sandbox.capillary.engine")
local common = require("loyalty.sandbox.capillary.common")
local inferred = require("loyalty.sandbox.capillary.inferred")
local customer = require("loyalty.sandbox.capillary.v11.customer")

local _M = {}
local array = json.array
local H = inferred.V2_HTTP

local SOURCES = {}
for s in ("INSTORE MARTJACK WECHAT FACEBOOK WEB_ENGAGE TMALL TAOBAO JD ECOMMERCE WEBSITE LINE MOBILE_APP ALL")
    :gmatch("%S+") do SOURCES[s] = true end

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
  local body, status, err = common.v2_body(req)
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
  local body, status, err = common.v2_body(req)
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

--- The customer the source, identifierName and identifierValue arguments name, or nil, status, body.
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

_M.lookup = lookup_args
_M.post, _M.put, _M.get, _M.find = customers_post, customers_put, customers_get, customers_lookup

return _M

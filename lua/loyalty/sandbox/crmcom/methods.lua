-- The CRM.COM sandbox's Web API methods (the route table the handler, server.lua, dispatches by
-- name): rewards_participants/show, customer_events/purchases/*, spend_requests/create,
-- products/synchronise, over the wallet engine (wallet.lua) and the store.
local json = require("loyalty.sandbox.json")
local cjson = require("cjson.safe")
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.crmcom.store")
local wallet = require("loyalty.sandbox.crmcom.wallet")
local common = require("loyalty.sandbox.crmcom.common")
local inferred = require("loyalty.sandbox.crmcom.inferred")

local _M = {}
local C = inferred.CODES
local array = json.array
local ok, err, release, unflatten, select_fields =
  common.ok, common.err, common.release, common.unflatten, common.select_fields

-- [DOC CRM-WIKI x/yHkH, pageId=489928 v5 example] show returns sign_up_on, life_cycle_state,
-- sign_up_by_unit (a Unit object), the udf_* fields (null when unset) and participating_schemes_set.
local function participant_view(cfg, rp)
  local ref = wallet.participant_ref(rp)
  ref.sign_up_on, ref.life_cycle_state = rp.sign_up_on, rp.life_cycle_state
  local first_unit
  for id in pairs(cfg.units or {}) do if not first_unit or id < first_unit then first_unit = id end end
  ref.sign_up_by_unit = wallet.unit_object(cfg, rp.sign_up_unit or first_unit)
  for i = 1, 8 do ref["udf_string_" .. i] = json.null end
  for i = 1, 4 do ref["udf_float_" .. i], ref["udf_date_" .. i] = json.null, json.null end
  ref.participating_schemes_set = array { { scheme = { name = (cstore.config().scheme or {}).name,
                                                       life_cycle_state = "EFFECTIVE" } } }
  return ref
end

local function one_field(ident, name)
  if type(ident) ~= "table" then return nil, err(C.invalid, name .. " must be an identifier object") end
  local n = 0
  for _ in pairs(ident) do n = n + 1 end
  if n ~= 1 then return nil, err(C.invalid, "exactly one " .. name .. " field is allowed") end
  return true
end

-- The participant named by a call. `event`: a customer event (purchases, spend requests), where
-- R17+ makes accounts_receivable_identifier mandatory [DOC CRM-WIKI pageId=514482]; before R17
-- exactly one of the two is given. show takes rewards_participant_identifier only.
local function participant_of(cfg, p, event)
  local rpi, ari = unflatten(p.rewards_participant_identifier), unflatten(p.accounts_receivable_identifier)
  if event and release(cfg) >= 17 then
    if ari == nil then
      return nil, err(C.invalid, "accounts_receivable_identifier is mandatory (CRM.COM R17.0.0 and later)")
    end
    rpi = nil -- deprecated from R17: ignored
  elseif not event then
    ari = nil
  end
  if rpi ~= nil and ari ~= nil then
    return nil, err(C.invalid, "give rewards_participant_identifier or accounts_receivable_identifier, not both")
  end
  local ident, name = rpi, "rewards_participant_identifier"
  if ari ~= nil then ident, name = ari, "accounts_receivable_identifier" end
  if ident == nil then return nil, err(C.invalid, name .. " is mandatory") end
  local fine, e1, e2 = one_field(ident, name)
  if not fine then return nil, e1, e2 end
  local rp
  if ari ~= nil then
    rp = cstore.find_account(ident)
  else
    if ident.access_token_identifier ~= nil and release(cfg) < 5 then
      return nil, err(C.invalid, "access_token_identifier is not a rewards participant identifier field before R5")
    end
    rp = cstore.find_participant(ident)
  end
  if not rp then return nil, err(C.not_found, "Rewards participant not found") end
  return rp
end

local function purchase_view(p)
  local v = {}
  for k, x in pairs(p) do v[k] = x end
  v.spend_requests, v.rewards_participant_number = nil, nil
  return v
end

local function synchronise(cfg, p)
  local def = p.synchronisation_definition_identifier
  if def ~= nil or release(cfg) >= inferred.SYNC_DEFINITION_FROM then
    if def == nil then
      return err(C.invalid, "synchronisation_definition_identifier is mandatory")
    end
    local fine, e1, e2 = one_field(def, "synchronisation_definition_identifier")
    if not fine then return e1, e2 end
    if not cstore.find_definition(def) then return err(C.not_found, "synchronisation definition not found") end
  end
  local set = p.products_set
  if type(set) ~= "table" or (set[1] == nil and next(set) ~= nil) then
    return err(C.invalid, "products_set is mandatory")
  end
  if #set > inferred.MAX_SYNC_PRODUCTS then
    return err(C.too_many, "At most " .. inferred.MAX_SYNC_PRODUCTS .. " products can be synchronised per call")
  end
  store.incr("crm:synccalls", 1)
  local processed, unprocessed = array {}, array {}
  local PC = inferred.PRODUCT_CODES
  for _, prod in ipairs(set) do
    local code = type(prod) == "table" and prod.code
    if type(code) == "number" then code = tostring(code) end
    if type(code) ~= "string" or code == "" then
      unprocessed[#unprocessed + 1] = { request_code = json.null, error_code = PC.missing_code,
                                        error_description = "code is mandatory" }
    elseif #code > inferred.MAX_PRODUCT_CODE or code:find("[%c]") then
      unprocessed[#unprocessed + 1] = { request_code = code, error_code = PC.invalid_code,
                                        error_description = "code is invalid" }
    else
      local id = cstore.upsert_product { code = code, description = prod.description,
                                         alternative_code = prod.alternative_code }
      processed[#processed + 1] = { request_code = code, id = id, code = code }
    end
  end
  local data = select_fields({ processed_products_set = processed, unprocessed_products_set = unprocessed },
                             p.fields_set)
  -- A thousand items per reply: encoded by cjson, empty sets spelled as arrays by hand.
  local parts = {}
  for _, k in ipairs { "processed_products_set", "unprocessed_products_set" } do
    local items = data[k]
    if items then
      parts[#parts + 1] = '"' .. k .. '":' .. (#items == 0 and "[]" or assert(cjson.encode(items)))
    end
  end
  return 200, nil, '{"status":{"code":"OK","message":null,"description":null},"data":{' ..
    table.concat(parts, ",") .. "}}"
end

local function list_purchases(cfg, p)
  local rp
  if p.rewards_participant_identifier or p.accounts_receivable_identifier then
    local e1, e2
    rp, e1, e2 = participant_of(cfg, p, true)
    if not rp then return e1, e2 end
  end
  local n = tonumber(p.number_of_results) or inferred.DEFAULT_NUMBER_OF_RESULTS
  local offset = tonumber(p.offset) or 0
  if n < 0 or offset < 0 then return err(C.invalid, "number_of_results and offset must be >= 0") end
  local out, skipped = array {}, 0
  for _, pur in ipairs(cstore.each_purchase()) do
    if not rp or pur.rewards_participant_number == rp.number then
      if skipped < offset then
        skipped = skipped + 1
      elseif #out < n then
        out[#out + 1] = purchase_view(pur)
      end
    end
  end
  return ok(select_fields(out, p.fields_set))
end

-- method -> { http method(s), handler(cfg, params, session) }
_M.ROUTES = {
  -- [DOC CRM-WIKI pageId=491668] GET on R4, POST from R5 (the level decides, see route()).
  ["rewards_participants/show"] = { GET = true, POST = true, function(cfg, p)
    local rp, e1, e2 = participant_of(cfg, p, false)
    if not rp then return e1, e2 end
    return ok(select_fields(participant_view(cfg, rp), p.fields_set))
  end },
  ["customer_events/purchases/preview"] = { POST = true, function(cfg, p)
    local rp, e1, e2 = participant_of(cfg, p, true)
    if not rp then return e1, e2 end
    local data, code, message = wallet.preview(cfg, rp, p)
    if not data then return err(code, message) end
    return ok(data)
  end },
  ["customer_events/purchases/create"] = { POST = true, function(cfg, p, session)
    local rp, e1, e2 = participant_of(cfg, p, true)
    if not rp then return e1, e2 end
    local data, code, message = wallet.create_purchase(cfg, rp, p, session.unit)
    if not data then return err(code, message) end
    return ok(purchase_view(data))
  end },
  ["customer_events/purchases/show"] = { GET = true, POST = true, function(_, p)
    local pur = cstore.find_purchase(unflatten(p.purchase_customer_event_identifier))
    if not pur then return err(C.not_found, "purchase customer event not found") end
    return ok(select_fields(purchase_view(pur), p.fields_set))
  end },
  ["customer_events/purchases/list"] = { POST = true, function(cfg, p) return list_purchases(cfg, p) end },
  ["customer_events/purchases/cancel"] = { POST = true, function(_, p)
    local data, code, message = wallet.cancel(p)
    if not data then return err(code, message) end
    return ok(purchase_view(data))
  end },
  ["customer_events/spend_requests/create"] = { POST = true, function(cfg, p, session)
    local rp, e1, e2 = participant_of(cfg, p, true)
    if not rp then return e1, e2 end
    local data, code, message = wallet.spend(cfg, rp, p, session.unit)
    if not data then return err(code, message) end
    return ok(data)
  end },
  ["products/synchronise"] = { POST = true, function(cfg, p) return synchronise(cfg, p) end },
}

return _M

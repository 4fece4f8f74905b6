-- The CRM.COM sandbox's wallet engine: awards by the seed's reward scheme, spend requests that
-- debit the wallet within the per-transaction limits, cancellations. Choices: crmcom/inferred.lua.
local json = require("loyalty.sandbox.json")
local cstore = require("loyalty.sandbox.crmcom.store")
local inferred = require("loyalty.sandbox.crmcom.inferred")

local _M = {}
local C = inferred.CODES

local function cents(x) return math.floor((tonumber(x) or 0) * 100 + 0.5) / 100 end
_M.cents = cents

local function fail(code, message) return nil, code, message end

-- The basket of a purchase body: lines with product codes and amounts, and totals.
local function basket(scheme, body)
  local excluded = {}
  for _, code in ipairs(scheme.excluded_products or {}) do excluded[code] = true end
  local lines, net, vat, total, eligible = json.array {}, 0, 0, 0, 0
  local set = body.products_set
  if set ~= nil and type(set) ~= "table" then return nil, "products_set must be an array" end
  for i, l in ipairs(set or {}) do
    if type(l) ~= "table" then return nil, "products_set[" .. i .. "] must be an object" end
    local n, v, t = tonumber(l.net_amount), tonumber(l.vat_amount), tonumber(l.total_amount)
    if not (n and v and t) then return nil, "products_set[" .. i .. "] needs net_amount, vat_amount, total_amount" end
    local pid = type(l.product_identifier) == "table" and l.product_identifier or {}
    local code = pid.code or pid.alternative_code or pid.id
    local product = code and cstore.store_product(code)
    local line = { quantity = tonumber(l.quantity) or 1, net_amount = cents(n), vat_amount = cents(v),
                   total_amount = cents(t),
                   product = product or { code = "DEFAULT_PRODUCT", description = "DEFAULT_PRODUCT" } }
    lines[#lines + 1] = line
    net, vat, total = net + n, vat + v, total + t
    if not (code and excluded[code]) then eligible = eligible + n end
  end
  return { lines = lines, net = cents(net), vat = cents(vat), total = cents(total), eligible = cents(eligible) }
end

local function award_of(scheme, b)
  return cents(b.eligible * (tonumber(scheme.award_percent) or 0) / 100)
end

local function limits(scheme)
  return tonumber(scheme.minimum_spend_amount_per_transaction) or 0,
         tonumber(scheme.maximum_spend_amount_per_transaction)
end

--- POST customer_events/purchases/preview (purchase_customer_event_preview_complete).
function _M.preview(cfg, rp, body)
  local scheme = cfg.scheme
  local b, err = basket(scheme, body)
  if not b then return fail(C.invalid, err) end
  local min, max = limits(scheme)
  local balance = cents(rp.wallet_balance)
  local additional = b.total > 0 and math.min(balance, b.total) or balance
  return {
    total_award_amount = award_of(scheme, b), total_instant_spend_amount = 0, total_automatic_spend_amount = 0,
    total_additional_spend_amount = cents(math.max(additional, 0)),
    minimum_spend_amount_per_transaction = min, maximum_spend_amount_per_transaction = max,
    reduction_method = scheme.reduction_method or "FRONT_END_REDUCTION",
    rewards_participant_id = rp.id, rewards_participant_name = rp.first_name .. " " .. rp.last_name,
    wallet_balance = balance, allow_spending = scheme.allow_spending ~= false and balance >= min and balance > 0,
  }
end

-- [DOC CRM-WIKI unit object (x/np0O)] a unit is an object {id, name, group_name, community_name,
-- alternative_code, description}, never a bare id; the seed knows id and name.
local function unit_object(cfg, id)
  if id == nil then return json.null end
  local u = cfg.units and cfg.units[id] or {}
  return { id = id, name = u.name or json.null, group_name = u.group_name or json.null,
           community_name = u.community_name or json.null, alternative_code = u.alternative_code or json.null,
           description = u.description or json.null }
end
_M.unit_object = unit_object

local function participant_ref(rp)
  return { id = rp.id, number = rp.number,
           accounts_receivable = { number = rp.accounts_receivable, name = rp.first_name .. " " .. rp.last_name,
                                   account_owner = { first_name = rp.first_name, last_name = rp.last_name,
                                                     type = "PERSON" } } }
end
_M.participant_ref = participant_ref

--- POST customer_events/purchases/create: POSTED, the award credited to the wallet.
function _M.create_purchase(cfg, rp, body, unit)
  local ref = body.external_system_reference_number
  if ref ~= nil then
    local existing = cstore.find_purchase { reference_number = ref }
    if existing then return existing end
  end
  if body.performed_on == nil then return fail(C.invalid, "performed_on is mandatory") end
  local b, err = basket(cfg.scheme, body)
  if not b then return fail(C.invalid, err) end
  local number, id = cstore.new_purchase_number()
  local award = award_of(cfg.scheme, b)
  rp.wallet_balance = cents(rp.wallet_balance + award)
  cstore.put_participant(rp)
  local p = {
    id = id, number = number, type = "PURCHASE", life_cycle_state = "POSTED", performed_on = body.performed_on,
    description = body.description, reference_number = body.reference_number,
    external_system = body.external_system, external_system_reference_number = ref,
    total_amount = b.total, net_amount = b.net, vat_amount = b.vat, products_set = b.lines,
    total_awarded_amount = award, total_spend_amount = 0, total_instant_spend_amount = 0,
    total_automatic_spend_amount = 0, requested_spend_amount = 0, rewards_participant_number = rp.number,
    performed_by_unit = unit_object(cfg, unit), spend_requests = json.array {},
    award_reward_transactions_set = json.array {
      { id = cstore.hex_id("award", number), number = "AW" .. number:sub(3), life_cycle_state = "POSTED",
        amount = award, rewards_participant = participant_ref(rp) } },
  }
  cstore.put_purchase(p)
  if ref ~= nil then cstore.index_purchase_ref(ref, number) end
  cstore.index_purchase_id(id, number)
  return p
end

--- POST customer_events/spend_requests/create: debits the wallet, within the scheme's limits.
function _M.spend(cfg, rp, body, unit)
  local ref = body.external_system_reference_number
  if ref ~= nil then
    local existing = cstore.find_spend_ref(ref)
    if existing then return existing end
  end
  local ident = body.purchase_customer_request_identifier or body.purchase_customer_event_identifier
  local p = cstore.find_purchase(ident)
  if not p then return fail(C.not_found, "purchase customer event not found") end
  if p.rewards_participant_number ~= rp.number then
    return fail(C.invalid, "the purchase belongs to another rewards participant")
  end
  if p.life_cycle_state ~= "POSTED" then return fail(C.not_posted, "the purchase is not POSTED") end
  if body.performed_on == nil then return fail(C.invalid, "performed_on is mandatory") end
  local scheme = cfg.scheme
  if scheme.allow_spending == false then return fail(C.spend_not_allowed, "spending is not allowed") end
  local min, max = limits(scheme)
  local requested = body.spend_amount ~= nil and tonumber(body.spend_amount) or p.total_amount
  if not requested or requested <= 0 then return fail(C.invalid, "spend_amount must be a positive number") end
  requested = cents(requested)
  if requested < min then
    return fail(C.below_minimum, string.format("spend amount %.2f is below the minimum %.2f per transaction",
                                               requested, min))
  end
  local actual = math.min(requested, rp.wallet_balance, p.total_amount - p.total_spend_amount)
  if max then actual = math.min(actual, max) end
  actual = cents(actual)
  if actual <= 0 or actual < min then
    return fail(C.no_balance, string.format("wallet balance %.2f allows no spend of at least %.2f",
                                            rp.wallet_balance, min))
  end
  rp.wallet_balance = cents(rp.wallet_balance - actual)
  cstore.put_participant(rp)
  local number, id = cstore.new_spend_number()
  local s = {
    id = id, number = number, type = "SPEND REQUEST", life_cycle_state = "POSTED", performed_on = body.performed_on,
    description = body.description, spend_amount = requested, reduction_method = scheme.reduction_method
    or "FRONT_END_REDUCTION", external_system_reference_number = ref, performed_by_unit = unit_object(cfg, unit),
    purchase_number = p.number,
    spend_reward_transaction = { id = cstore.hex_id("spendtx", number), number = "ST" .. number:sub(3),
                                 life_cycle_state = "POSTED", amount = actual,
                                 rewards_participant = participant_ref(rp) },
  }
  cstore.put_spend(s)
  if ref ~= nil then cstore.index_spend_ref(ref, number) end
  p.total_spend_amount = cents(p.total_spend_amount + actual)
  p.requested_spend_amount = cents(p.requested_spend_amount + requested)
  p.spend_requests[#p.spend_requests + 1] = number
  cstore.put_purchase(p)
  return s
end

--- POST customer_events/purchases/cancel: award taken back, spends on it refunded.
function _M.cancel(body)
  local p = cstore.find_purchase(body.purchase_customer_event_identifier)
  if not p then return fail(C.not_found, "purchase customer event not found") end
  if p.life_cycle_state == "CANCELLED" then return fail(C.cancelled, "the purchase is already cancelled") end
  local rp = cstore.participant(p.rewards_participant_number)
  local refund = 0
  for _, n in ipairs(p.spend_requests) do
    local s = cstore.spend(n)
    if s and s.life_cycle_state == "POSTED" then
      refund = refund + s.spend_reward_transaction.amount
      s.life_cycle_state, s.spend_reward_transaction.life_cycle_state = "CANCELLED", "CANCELLED"
      cstore.put_spend(s)
    end
  end
  rp.wallet_balance = cents(rp.wallet_balance - p.total_awarded_amount + refund)
  cstore.put_participant(rp)
  p.life_cycle_state = "CANCELLED"
  for _, a in ipairs(p.award_reward_transactions_set) do a.life_cycle_state = "CANCELLED" end
  cstore.put_purchase(p)
  return p
end

return _M

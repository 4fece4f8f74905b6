-- The program's Capillary backend: store-level verbs in terms of the client's v1.1/v2 calls.
-- `ident` is { key = "mobile"|"email"|"external_id", value = "…" }.
local errors = require "loyalty.errors"

local _M = {}

local Backend = {}
Backend.__index = Backend

function _M.new(client, settings)
  return setmetatable({ client = client, settings = settings }, Backend)
end

local NOT_FOUND = { [816] = true, [881] = true, [1011] = true, [1012] = true, [1013] = true, [1020] = true }

local function mark_not_found(err)
  if err and err.kind == "api" and NOT_FOUND[err.code] then err.not_found = true end
  return err
end

local function fields_of(list)
  local out = {}
  if type(list) == "table" then
    for _, f in ipairs(list.field or list) do
      if type(f) == "table" and f.name then out[f.name] = f.value end
    end
  end
  return out
end

local function field_list(map)
  local list = {}
  for name, value in pairs(map or {}) do list[#list + 1] = { name = name, value = tostring(value) } end
  table.sort(list, function(a, b) return a.name < b.name end)
  return { field = list }
end

-- A CRM customer as the program sees it.
local function customer_view(c)
  if not c then return nil end
  return {
    id = c.user_id, mobile = c.mobile, email = c.email, external_id = c.external_id,
    firstname = c.firstname, lastname = c.lastname,
    points = tonumber(c.loyalty_points) or 0, lifetime_points = tonumber(c.lifetime_points) or 0,
    lifetime_purchases = tonumber(c.lifetime_purchases) or 0, tier = c.current_slab,
    custom_fields = fields_of(c.custom_fields), extended_fields = fields_of(c.extended_fields),
    subscriptions = c.subscriptions and c.subscriptions.subscription or nil,
  }
end
_M.customer_view = customer_view

-- The programme of a customer record's first points summary (points/isredeemable needs one).
local function summary_program(c)
  local ps = type(c) == "table" and type(c.points_summaries) == "table" and c.points_summaries.points_summary
  return type(ps) == "table" and type(ps[1]) == "table" and tonumber(ps[1].programId) or nil
end

function Backend:lookup(ident)
  local args = { [ident.key] = ident.value, points_summary = true, subscriptions = true, user_id = true }
  local r, err = self.client:customer_get(args)
  if not r then return nil, mark_not_found(err) end
  if not (self.settings.program_id or self.learned_program_id) then
    self.learned_program_id = summary_program(r.customer)
  end
  return customer_view(r.customer)
end

local function subscription_list(subs)
  local list = {}
  for channel, on in pairs(subs or {}) do
    list[#list + 1] = { priority = "BULK", scope = "all", channel = channel, is_subscribed = on and "1" or "0" }
  end
  table.sort(list, function(a, b) return a.channel < b.channel end)
  return list
end

--- profile: {mobile, email, external_id, firstname, lastname, custom_fields = {}, extended_fields = {}}
function Backend:register(profile, subscriptions)
  local c = {
    mobile = profile.mobile, email = profile.email, external_id = profile.external_id,
    firstname = profile.firstname, lastname = profile.lastname,
    registered_on = os.date("!%Y-%m-%d %H:%M:%S"), source = self.settings.source, type = "LOYALTY",
  }
  if next(profile.custom_fields or {}) then c.custom_fields = field_list(profile.custom_fields) end
  if next(profile.extended_fields or {}) then c.extended_fields = field_list(profile.extended_fields) end
  if subscriptions then c.subscriptions = { subscription = subscription_list(subscriptions) } end
  local r, err = self.client:customer_add(c)
  if not r then return nil, err end
  return customer_view(r.customer)
end

function Backend:subscribe(ident, subscriptions)
  local list = subscription_list(subscriptions)
  for _, s in ipairs(list) do s[ident.key] = ident.value end
  local r, err = self.client:customer_subscriptions(list)
  if not r then return nil, mark_not_found(err) end
  return { subscriptions = r.subscriptions }
end

-- points/isredeemable needs the programme id (mandatory in the current docs): the setting, or
-- [INF] the programme of the customer's first points summary (customer/get points_summary=true),
-- learned once; an org with several programmes sets program_id.
function Backend:program_id(ident)
  local id = self.settings.program_id or self.learned_program_id
  if id then return id end
  local r, err = self.client:customer_get { [ident.key] = ident.value, points_summary = true }
  if not r then return nil, mark_not_found(err) end -- an unknown shopper stays "not enrolled"
  id = summary_program(r.customer)
  self.learned_program_id = id
  return id
end

function Backend:check_redeemable(ident, points, issue_otp)
  local program_id, perr = self:program_id(ident)
  if perr then return nil, perr end
  local r, err = self.client:points_isredeemable {
    [ident.key] = ident.value, points = points, issue_otp = issue_otp or nil, program_id = program_id,
  }
  if not r then return nil, mark_not_found(err) end
  local red = r.redeemable or {}
  return { redeemable = red.is_redeemable == true, value = tonumber(red.points_redeem_value),
           ratio = tonumber(red.points_currency_ratio), warnings = r.warnings }
end

function Backend:send_otp(ident, points)
  local r, err = self.client:points_validation_code { [ident.key] = ident.value, points = points }
  if not r then return nil, mark_not_found(err) end
  return { sent = true }
end

--- opts: {points, otp, reference, bill_number, skip_otp}
function Backend:redeem(ident, opts)
  local body = {
    points_redeemed = opts.points, customer = { [ident.key] = ident.value },
    external_reference_number = opts.reference, transaction_number = opts.bill_number,
    validation_code = opts.otp, redemption_time = os.date("!%Y-%m-%d %H:%M:%S"),
  }
  local query = { skip_validation = opts.skip_otp and "true" or nil, program_id = self.settings.program_id }
  local r, err = self.client:points_redeem(body, query)
  if not r then return nil, err end
  local red = r.redemption or {}
  return { redemption_id = red.redemption_id, points = tonumber(red.points_redeemed) or opts.points,
           value = tonumber(red.redeemed_value), balance = tonumber(red.balance) }
end

local function line_items(lines, attributes_of)
  local out = {}
  for i, l in ipairs(lines) do
    local qty = l.qty or 1
    local amount = l.amount or (l.price or 0) * qty
    local item = {
      serial = i, item_code = l.sku, description = l.name, qty = qty, rate = l.price,
      value = (l.price or amount / qty) * qty, discount_value = l.discount, amount = amount,
    }
    local attrs = attributes_of and attributes_of(l)
    if attrs and #attrs > 0 then item.attributes = { attribute = attrs } end
    out[i] = item
  end
  return { line_item = out }
end

--- order: {id, lines, total, gross, discount, store_code, placed_at, redemption = {id, points, value}}
-- opts: {attributes_of(line), custom_fields, till = {client, attribution}} (the store's till)
function Backend:post_order(ident, profile, order, opts)
  local tx = {
    type = "regular", number = tostring(order.id), amount = order.total, gross_amount = order.gross,
    discount = order.discount, billing_time = order.placed_at or os.date("!%Y-%m-%d %H:%M:%S"),
    source = self.settings.source,
    customer = { [ident.key] = ident.value, firstname = profile.firstname, lastname = profile.lastname },
    line_items = line_items(order.lines, opts.attributes_of),
    custom_fields = field_list(opts.custom_fields),
  }
  if order.redemption and order.redemption.id then
    tx.redemptions = { points_redemptions = { id = { order.redemption.id } } }
    tx.payment_details = { payment = { { mode = "points", value = order.redemption.value } } }
  end
  local till = opts.till or {}
  local client = till.client or self.client
  local spec, err = client.provider.ops.transaction_add(tx)
  if not spec then return nil, err end
  spec.attribution = till.attribution
  local r
  r, err = client:request(spec)
  if not r then return nil, mark_not_found(err) end
  local c = r.customer or {}
  return { points_earned = r.points_earned, duplicate = r.duplicate,
           transaction_id = r.transaction and r.transaction.id,
           balance = tonumber(c.loyalty_points), request_id = r.request_id }
end

-- Capillary has no idempotency key for returns (§7): each return carries this custom field, the
-- same on its first attempt and on every replay, so a replay can ask whether it already landed.
-- [DOC S-V11 "Get Customer Transactions"] customer/transactions filters by `number`, pages by
-- `limit`/`offset`, shows custom_fields with custom_fields=true, and answers `count` (all matching)
-- and `start` (the first id shown). [INF] The org accepts the field on a return (custom fields are
-- set up per org) and a return is its own row of type RETURN.
_M.RETURN_REF_FIELD = "loyalty_return_ref"

--- ret: {kind = "FULL"|"LINE_ITEM"|"AMOUNT", lines, amount, till, ref}
function Backend:post_return(ident, order, ret)
  local tx = {
    type = "return", return_type = ret.kind, number = tostring(order.id),
    amount = ret.amount or order.total, billing_time = os.date("!%Y-%m-%d %H:%M:%S"),
    purchase_time = (order.placed_at or os.date("!%Y-%m-%d")):sub(1, 10),
    customer = { [ident.key] = ident.value },
  }
  if ret.ref then tx.custom_fields = field_list { [_M.RETURN_REF_FIELD] = ret.ref } end
  if ret.kind == "LINE_ITEM" then tx.line_items = line_items(ret.lines) end
  local till = ret.till or {}
  local client = till.client or self.client
  local spec, err = client.provider.ops.transaction_add(tx)
  if not spec then return nil, err end
  -- A return shares the bill number of its order, so 604 is no replay signal here.
  spec.idempotent, spec.duplicate_code = false, nil
  spec.attribution = till.attribution
  local r
  r, err = client:request(spec)
  if not r then return nil, mark_not_found(err) end
  local tr = r.transaction or {}
  return { points_deducted = tonumber(tr.points_deducted) or 0, balance = tonumber(tr.points_balance) }
end

local RETURN_PAGE, RETURN_MAX_PAGES = 100, 20

--- Whether the CRM already holds the return `tx` (a transaction/add payload from post_return):
-- true | false (not there, or tx carries no reference) | nil, err (the lookup failed).
function _M.find_return(client, tx)
  local ref = fields_of(tx.custom_fields)[_M.RETURN_REF_FIELD]
  if ref == nil then return false end
  local args = { number = tx.number, custom_fields = true, limit = RETURN_PAGE }
  local customer = type(tx.customer) == "table" and tx.customer or {}
  for _, k in ipairs { "mobile", "email", "external_id" } do args[k] = customer[k] end
  local starts = {}
  for page = 0, RETURN_MAX_PAGES - 1 do
    args.offset = page * RETURN_PAGE
    local r, err = client:customer_transactions(args)
    if not r then return nil, err end
    for _, t in ipairs(r.transactions) do
      if type(t) == "table" and tostring(t.type):upper() == "RETURN" and tostring(t.number) == tostring(tx.number)
        and fields_of(t.custom_fields)[_M.RETURN_REF_FIELD] == ref then
        return true
      end
    end
    local seen = args.offset + #r.transactions
    if #r.transactions < RETURN_PAGE or (r.count and seen >= r.count) then return false end
    -- A page starting where an earlier one did means the server ignored `offset`: stop, unsure.
    if r.start then
      if starts[r.start] then
        return nil, errors.new { kind = "decode", retryable = false, request_id = r.request_id,
                                 message = "customer/transactions ignored offset (page at offset " .. args.offset ..
                                           " starts at transaction " .. r.start .. " again) for bill " ..
                                           tostring(tx.number) }
      end
      starts[r.start] = true
    end
  end
  return nil, errors.new { kind = "decode", retryable = true,
                           message = "customer/transactions kept paging past " .. RETURN_MAX_PAGES * RETURN_PAGE ..
                                     " entries for bill " .. tostring(tx.number) }
end

function Backend:reverse_redemption(ident, redemption_id, points)
  local id_type = ident.key == "external_id" and "externalId" or ident.key
  local r, err = self.client:v2_points_reverse {
    redemptionId = redemption_id, pointsToBeReversed = points, identifier = { type = id_type, value = ident.value },
  }
  if not r then return nil, err end
  return { points_reversed = tonumber(r.body.pointsReversed) or points, reversal_id = r.body.reversalId }
end

return _M

-- The program's Capillary backend: store-level verbs in terms of the client's v1.1/v2 calls.
-- `ident` is { key = "mobile"|"email"|"external_id", value = "…" }.
local errors = require "loyalty.errors"
local money = require "loyalty.program.money"
local shape = require "loyalty.shape"

local _M = {}

local Backend = {}
Backend.__index = Backend

function _M.new(client, settings)
  return setmetatable({ client = client, settings = settings }, Backend)
end

-- Settings (loyalty.program.config): the host and the credentials a Capillary till needs.
function _M.check_settings(s)
  local crm = s.crm
  if not (crm.username or crm.client_key) then
    return nil, errors.config("setting 'crm.username': credentials missing: username/password or "
                              .. "client_key/client_secret", "crm.username")
  end
  if not (crm.base_url or crm.environment) then
    return nil, errors.config("setting 'crm.environment': set environment (and cluster for production) or base_url",
                              "crm.environment")
  end
  return true
end

-- The CRM's redemption-limit refusals (capillary.md §5): code -> the limit it names. 819's
-- documented text ("exceeds the threshold limit (maximum points that can be redeemed in a
-- transaction)") names no maximum, so the program does not re-quote at a guessed one.
local CRM_LIMITS = { [819] = "max_per_transaction", [821] = "min_per_transaction", [807] = "multiple_of" }

--- err -> the name of the CRM limit that refused a redemption, or nil.
function _M.limit_refusal(err)
  return err ~= nil and CRM_LIMITS[tonumber(err.code)] or nil
end

--- Whether a reversal was refused because the redemption is reversed already (3802).
function _M.already_reversed(err)
  return err ~= nil and err.kind == "api" and tonumber(err.code) == 3802
end

local NOT_FOUND = { [816] = true, [881] = true, [1011] = true, [1012] = true, [1013] = true, [1020] = true }

local function mark_not_found(err)
  if err and err.kind == "api" and NOT_FOUND[err.code] then err.not_found = true end
  return err
end

local function blank(v) return v == nil or v == "" or type(v) == "userdata" end

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

local CUSTOMER_TEXT = { mobile = "mobile", email = "email", external_id = "external_id", firstname = "firstname",
                        lastname = "lastname", tier = "current_slab" }
local CUSTOMER_NUMBERS = { points = "loyalty_points", lifetime_points = "lifetime_points",
                           lifetime_purchases = "lifetime_purchases" }

-- A CRM customer as the program sees it, or nil, err (a decode error naming the field) when a
-- field it reads has the wrong type. `r` is the result it came from (for the request id).
local function customer_view(c, r)
  if not c then return nil end
  local v = {}
  local err
  v.id, err = shape.scalar(r, c.user_id, "customer.user_id")
  if err then return nil, err end
  for key, field in pairs(CUSTOMER_TEXT) do
    v[key], err = shape.text(r, c[field], "customer." .. field)
    if err then return nil, err end
  end
  for key, field in pairs(CUSTOMER_NUMBERS) do
    local n
    n, err = shape.number(r, c[field], "customer." .. field)
    if err then return nil, err end
    v[key] = n or 0
  end
  local subs
  subs, err = shape.object(r, c.subscriptions, "customer.subscriptions")
  if err then return nil, err end
  if subs then
    v.subscriptions, err = shape.objects(r, subs.subscription, "customer.subscriptions.subscription")
    if err then return nil, err end
  end
  v.custom_fields, v.extended_fields = fields_of(c.custom_fields), fields_of(c.extended_fields)
  return v
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
  if not r.customer then return nil, shape.bad(r, "customers.customer", "a customer", nil) end
  if not (self.settings.program_id or self.learned_program_id) then
    self.learned_program_id = summary_program(r.customer)
  end
  return customer_view(r.customer, r)
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
  if not r.customer then return nil, shape.bad(r, "customers.customer", "a customer", nil) end
  local view, verr = customer_view(r.customer, r)
  if view then view.partial, view.failed, view.request_id = _M.failures(r) end
  return view, verr
end

--- A batch reply's failed items as {partial, failed = {{item, code, message}...}}: any failed item
-- makes it partial and is named (the client marks code 201 and "200 Some requests have failed").
function _M.failures(r)
  local failed = {}
  for _, it in ipairs(type(r.items) == "table" and r.items or {}) do
    if type(it) == "table" and it.success == false then
      failed[#failed + 1] = { item = it.key or (type(it.item) == "table" and (it.item.channel or it.item.number)),
                              code = tonumber(it.code) or it.code, message = shape.message(it.message) }
    end
  end
  if #failed == 0 and not r.partial then return nil, nil, r.request_id end
  return true, failed, r.request_id
end

--- The member carrying custom field `attr` = value (customer/search): ident {key, value} | nil
-- (nobody) | nil, err. Several matches: the first, with .ambiguous naming them all.
-- customer/search documents custom field values as searchable and the `ATTR:EQUALS:value`
-- grammar; [INF] the custom field's own name is the ATTR (the docs list only built-in names).
function Backend:find_by_attribute(attr, value)
  local r, err = self.client:customer_search { q = "(" .. attr .. ":EQUALS:" .. value .. ")" }
  if not r then return nil, err end
  local out, names = nil, {}
  for _, c in ipairs(type(r.customers) == "table" and r.customers or {}) do
    if type(c) == "table" then
      local ext = c.external_id ~= "None" and c.external_id or nil
      local ident
      if not blank(c.mobile) then ident = { key = "mobile", value = tostring(c.mobile) }
      elseif not blank(c.email) then ident = { key = "email", value = tostring(c.email) }
      elseif not blank(ext) then ident = { key = "external_id", value = tostring(ext) }
      elseif not blank(c.user_id) then ident = { key = "id", value = tostring(c.user_id) } end
      if ident then
        out = out or ident
        names[#names + 1] = tostring(c.user_id)
      end
    end
  end
  if out and #names > 1 then out.ambiguous = table.concat(names, ",") end
  return out
end

--- Adds custom field attr = value to the member known by ident (customer/update).
function Backend:link_attribute(ident, attr, value)
  local r, err = self.client:customer_update {
    [ident.key] = ident.value, custom_fields = field_list { [attr] = value },
  }
  if not r then return nil, mark_not_found(err) end
  return customer_view(r.customer, r)
end

function Backend:subscribe(ident, subscriptions)
  local list = subscription_list(subscriptions)
  for _, s in ipairs(list) do s[ident.key] = ident.value end
  local r, err = self.client:customer_subscriptions(list)
  if not r then return nil, mark_not_found(err) end
  local partial, failed = _M.failures(r)
  return { subscriptions = r.subscriptions, partial = partial, failed = failed, request_id = r.request_id }
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
  if not r then
    -- A refusal still carries the CRM's ratio: the rate is learnt from it too.
    local it = err and type(err.items) == "table" and err.items[1]
    if it then err.crm_rate = money.rate_of_item(it.item, points) end
    return nil, mark_not_found(err)
  end
  local red = r.redeemable or {}
  local ok, value, ratio
  ok, err = shape.boolean(r, red.is_redeemable, "points.redeemable.is_redeemable")
  if err then return nil, err end
  value, err = shape.number(r, red.points_redeem_value, "points.redeemable.points_redeem_value")
  if err then return nil, err end
  ratio, err = shape.number(r, red.points_currency_ratio, "points.redeemable.points_currency_ratio")
  if err then return nil, err end
  -- A value for other points than those asked (the reply names its own) is no value for these.
  local valued = tonumber(red.points)
  if valued and valued > 0 and valued ~= tonumber(points) then value = nil end
  return { redeemable = ok == true, value = value, ratio = ratio, rate = money.rate_of_item(red, points),
           warnings = r.warnings, request_id = r.request_id }
end

--- The CRM's value of one point for this customer: isredeemable's answer for `points`.
function Backend:point_rate(ident, points)
  local r, err = self:check_redeemable(ident, math.max(points or 0, 1))
  if r and r.rate then return r.rate, "points/isredeemable" end
  if not r and err.kind == "api" and err.crm_rate then return err.crm_rate, "points/isredeemable" end
  if not r then return nil, err end
  return nil, errors.new { kind = "decode", message = "points/isredeemable named no value for the points",
                           request_id = r.request_id }
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
  local query = { skip_validation = opts.skip_otp and "true" or nil,
                  program_id = opts.program_id or self.settings.program_id }
  local r, err = self.client:points_redeem(body, query)
  if not r then return nil, err end
  local red = r.redemption or {}
  local out = { rate = money.rate_of_item(red), request_id = r.request_id }
  out.redemption_id, err = shape.scalar(r, red.redemption_id, "responses.points.redemption_id")
  if err then return nil, err end
  for key, field in pairs { points = "points_redeemed", value = "redeemed_value", balance = "balance" } do
    out[key], err = shape.number(r, red[field], "responses.points." .. field)
    if err then return nil, err end
  end
  out.points = out.points or opts.points
  return out
end

local function line_items(lines, attributes_of)
  local out = {}
  for i, l in ipairs(lines) do
    local qty = l.qty or 1
    local amount = l.amount or (l.price or 0) * qty
    local item = {
      serial = l.serial or i, item_code = l.sku, description = l.name, qty = qty, rate = l.price,
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
  if not r then
    -- The bill number is the order id: 604 says the CRM already has this order (a retried post).
    if err.kind == "api" and tonumber(err.code) == 604 then
      return { duplicate = true, request_id = err.request_id }
    end
    return nil, mark_not_found(err)
  end
  local c = r.customer or {}
  local balance, tx_id
  balance, err = shape.number(r, c.loyalty_points, "transactions.transaction[1].customer.loyalty_points")
  if err then return nil, err end
  tx_id, err = shape.scalar(r, r.transaction and r.transaction.id, "transactions.transaction[1].id")
  if err then return nil, err end
  return { points_earned = r.points_earned, duplicate = r.duplicate, transaction_id = tx_id,
           balance = balance, request_id = r.request_id }
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
  local deducted, balance
  deducted, err = shape.number(r, tr.points_deducted, "transactions.transaction[1].points_deducted")
  if err then return nil, err end
  balance, err = shape.number(r, tr.points_balance, "transactions.transaction[1].points_balance")
  if err then return nil, err end
  return { points_deducted = deducted or 0, balance = balance }
end

local RETURN_PAGE, RETURN_MAX_PAGES = 100, 20
_M.RETURN_PAGE = RETURN_PAGE -- customer/transactions page size of the returns ledger

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

-- transaction/get codes meaning "no such bill": 602 (the sandbox's [INF] choice), 625 "Transaction
-- number does not exist", 668 "Unable to find the transaction number for this customer".
local NO_BILL = { [602] = true, [625] = true, [668] = true }

-- Refusals of a replayed redeem that say it would not be booked (the OTP, the balance, the
-- programme's limits, the customer): nothing was booked under that reference.
local NOT_BOOKED = { [801] = true, [803] = true, [804] = true, [807] = true, [808] = true, [813] = true,
                     [816] = true, [818] = true, [819] = true, [821] = true, [878] = true, [881] = true }

--- What a redeem whose reply was lost booked (a hold payload with .unknown): the redeem replayed
-- under its external_reference_number, the idempotency key (capillary.md §7), so a booked one
-- answers its original reply and debits nothing more. The replay carries no OTP: when the first
-- never landed, an OTP-checked redeem is refused (808) and books nothing. [INF] A booked reference
-- replays its original (sandbox REDEEM_DUPLICATE_RETURNS_ORIGINAL; the docs say "an error or the
-- original result"), so a refusal of the OTP, balance or limits (NOT_BOOKED) means nothing was
-- booked; any other refusal leaves the outcome unknown (an error naming the reference). With
-- skip_otp the replay of a redeem that never landed books it now; the caller reverses it at once,
-- so the balance ends the same.
-- -> {redemption_id, points, value} | {none = true, code} | nil, err (still unknown).
function Backend:resolve_redemption(p)
  local rp = type(p.replay) == "table" and p.replay or {}
  local key, value = next(type(p.customer) == "table" and p.customer or {})
  if not (rp.reference and rp.points and key) then
    return nil, errors.new { kind = "config", message = "the hold of unknown outcome carries no redeem to replay" }
  end
  local r, err = self:redeem({ key = key, value = tostring(value) }, {
    points = rp.points, reference = rp.reference, bill_number = rp.bill_number, skip_otp = rp.skip_otp,
    program_id = rp.program_id,
  })
  if r then return r end
  if err.kind == "api" and NOT_BOOKED[tonumber(err.code)] then
    return { none = true, code = err.code, request_id = err.request_id }
  end
  if err.kind == "api" then
    -- Any other refusal may be the CRM's answer to a known reference ("an error or the original
    -- result"): the outcome stays unknown, loudly, rather than a booked redemption left unreversed.
    return nil, errors.new { kind = "api", code = err.code, request_id = err.request_id, retryable = false,
                             outcome_unknown = true,
                             message = "the redeem of reference " .. tostring(rp.reference) .. " could not be " ..
                               "resolved: its replay was refused (" .. tostring(err.code) .. ": " ..
                               tostring(err.message) .. "); check the customer's redemptions at the CRM" }
  end
  return nil, err
end

--- Gives back a held redemption (payload from loyalty.program.holds) unless its order's bill is at
-- the CRM: {placed = true} | {points_reversed, reversal_id} | {already = true} | nil, err. A hold
-- of unknown outcome is resolved first: nothing booked gives {points_reversed = 0, nothing_booked}.
function Backend:cancel_redemption(_, p)
  local t, err = self.client:transaction_get { number = p.bill_number }
  if t and t.transaction and tostring(t.transaction.type or "REGULAR"):upper() ~= "RETURN" then
    return { placed = true, request_id = t.request_id }
  end
  if not t and not (err.kind == "api" and NO_BILL[tonumber(err.code)]) then return nil, err end
  -- Holds stored before the storefront built the reversal carry it as p.reverse.
  local reverse = p.reverse
  if not reverse and not p.unknown then
    local key, value = next(type(p.customer) == "table" and p.customer or {})
    reverse = { redemptionId = p.redemption_id, pointsToBeReversed = tonumber(p.points),
                identifier = { type = key == "external_id" and "externalId" or key, value = tostring(value) } }
  end
  if p.unknown then
    local res
    res, err = self:resolve_redemption(p)
    if not res then return nil, err end
    if res.none then return { points_reversed = 0, nothing_booked = true, resolved = "nothing booked" } end
    local key, value = next(p.customer)
    reverse = { redemptionId = res.redemption_id, pointsToBeReversed = res.points,
                identifier = { type = key == "external_id" and "externalId" or key, value = tostring(value) } }
  end
  local r
  r, err = self.client:v2_points_reverse(reverse)
  if not r then
    if _M.already_reversed(err) then return { already = true, points_reversed = 0 } end
    return nil, err
  end
  return { points_reversed = tonumber(r.body.pointsReversed) or reverse.pointsToBeReversed,
           reversal_id = r.body.reversalId, redemption_id = reverse.redemptionId }
end

--- The CRM's record of a bill for the returns ledger: bill (transaction/get: its lines), returns
-- (customer/transactions rows of type RETURN for its number) | nil, err (err.no_bill when the CRM
-- has no such bill).
function Backend:bill_record(ident, number)
  local t, err = self.client:transaction_get { number = number }
  if not t then
    if err.kind == "api" and NO_BILL[tonumber(err.code)] then err.no_bill = true end
    return nil, err
  end
  -- Rows are counted once by transaction id: a CRM that ignores `offset` (its docs show `start` as a
  -- transaction id) answers the same page again, whose returns must not count twice. A page with no
  -- row not seen before ends the paging; when `count` says rows are still missing, the rest is asked
  -- for in one page (limit = count), and a ledger that stays short is an error, never a guess.
  local returns, seen, unique = {}, {}, 0
  local function take(rows)
    local new = 0
    for _, row in ipairs(rows) do
      local id = type(row) == "table" and row.id ~= nil and tostring(row.id) or nil
      if type(row) == "table" and not (id and seen[id]) then
        if id then seen[id] = true end
        new, unique = new + 1, unique + 1
        if tostring(row.type):upper() == "RETURN" and tostring(row.number) == number then
          returns[#returns + 1] = row
        end
      end
    end
    return new
  end
  local page_size = _M.RETURN_PAGE
  local args = { [ident.key] = ident.value, number = number, limit = page_size }
  for page = 0, RETURN_MAX_PAGES - 1 do
    args.offset = page * page_size
    local r
    r, err = self.client:customer_transactions(args)
    if not r then return nil, err end
    local new = take(r.transactions)
    if #r.transactions < page_size or (r.count and unique >= r.count) then break end
    if new == 0 then
      local count = r.count
      if count and count <= page_size * RETURN_MAX_PAGES then
        args.offset, args.limit = nil, count
        r, err = self.client:customer_transactions(args)
        if not r then return nil, err end
        take(r.transactions)
      end
      if not (count and unique >= count) then
        return nil, errors.new { kind = "decode", retryable = false, request_id = r.request_id,
                                 message = "customer/transactions ignored offset (a page at offset " ..
                                   page * page_size .. " repeated earlier rows) and the returns of bill " ..
                                   number .. " could not all be read" }
      end
      break
    end
  end
  return t.transaction or {}, returns
end

function Backend:reverse_redemption(ident, redemption_id, points)
  local id_type = ident.key == "external_id" and "externalId" or ident.key
  local r, err = self.client:v2_points_reverse {
    redemptionId = redemption_id, pointsToBeReversed = points, identifier = { type = id_type, value = ident.value },
  }
  if not r then return nil, err end
  local reversed, id
  reversed, err = shape.number(r, r.body.pointsReversed, "pointsReversed")
  if err then return nil, err end
  id, err = shape.scalar(r, r.body.reversalId, "reversalId")
  if err then return nil, err end
  return { points_reversed = reversed or points, reversal_id = id }
end

return _M

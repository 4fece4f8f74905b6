-- The program's CRM.COM backend: the store verbs over the legacy Web API's POS flow.
-- The wallet is money (cashback), so "points" here are wallet amounts in the CRM's currency:
-- summary shows the wallet balance, a redemption is a spend request on the order's purchase,
-- an order is a purchase, a whole-order return cancels the purchase.
-- `ident` is { key = "mobile"|"email"|"external_id", value = "…" }.
local errors = require "loyalty.errors"
local crmcom = require "loyalty.providers.crmcom"
local shape = require "loyalty.shape"

local _M = {}

local Backend = {}
Backend.__index = Backend

-- The wallet is money: an award is an amount in the CRM's currency, not points (rules drift and
-- the order log compare it with the estimate's value at the rules' point_value).
_M.AWARDS_MONEY = true
-- A redemption makes the order's purchase (a spend request settles a purchase): an order not
-- posted to earn still has a purchase to cancel when it is returned.
_M.REDEMPTION_BOOKS_ORDER = true

function _M.new(client, settings)
  return setmetatable({ client = client, settings = settings }, Backend)
end

-- Settings --------------------------------------------------------------------------------------

-- Settings whose meaning does not carry over: setting -> { refused value (nil: any but the
-- default, so that already checked settings pass again), why, default }.
local REFUSED = {
  registration = { true, "the legacy Web API POS flow has no sign-up call (participants are created in CRM.COM)" },
  registration_crm_first = { true, "the legacy Web API POS flow has no sign-up call" },
  post_subscriptions = { true, "the legacy Web API POS flow has no subscription call" },
  skip_redemption_otp = { false, "the legacy Web API has no redemption OTP: spend requests need none" },
  use_order_store_till = { true, "store tills are Capillary's; CRM.COM attributes by the login's unit" },
  store_tills = { nil, "store tills are Capillary's; give crm.unit to the login instead" },
  source = { nil, "the transaction source is Capillary's", default = "INSTORE" },
  program_id = { nil, "programme ids are Capillary's" },
  outbox = { nil, "the outbox replays Capillary operations only" },
}
local CRM_REFUSED = {
  client_key = "CRM.COM logs in with username/password/organisation or api_key",
  client_secret = "CRM.COM logs in with username/password/organisation or api_key",
  token_header = "the CRM.COM token is a parameter, not a header",
  environment = "CRM.COM has no public hosts: set crm.base_url to {server}/crmapi/rest/v2",
  cluster = "CRM.COM has no public hosts: set crm.base_url to {server}/crmapi/rest/v2",
  attribution = "attribution headers are Capillary's; give crm.unit instead",
}
-- Defaults where the Capillary default has no meaning here.
local DEFAULTS = { registration = false, post_subscriptions = false, skip_redemption_otp = true }

local function setting_error(key, message)
  return nil, errors.config("setting '" .. key .. "': " .. message .. " (provider crmcom)", key)
end

--- Checks settings for provider = "crmcom" (before defaults are filled); fills its defaults.
function _M.check_settings(s)
  for key, rule in pairs(REFUSED) do
    local v = s[key]
    if v ~= nil and (v == rule[1] or (rule[1] == nil and v ~= rule.default)) then
      return setting_error(key, rule[2])
    end
  end
  for key, v in pairs(DEFAULTS) do
    if s[key] == nil then s[key] = v end
  end
  local crm = type(s.crm) == "table" and s.crm or {}
  for key, why in pairs(CRM_REFUSED) do
    if crm[key] ~= nil then return setting_error("crm." .. key, why) end
  end
  if crm.base_url == nil then return setting_error("crm.base_url", "missing: {server}/crmapi/rest/v2") end
  if crm.api_key == nil and crm.username ~= nil and crm.organisation == nil then
    return setting_error("crm.organisation", "missing: the organisation to log in to")
  end
  if crm.api_key == nil and crm.username == nil then
    return setting_error("crm.username", "credentials missing: username/password/organisation or api_key")
  end
  return true
end

local function not_carried(operation, why)
  return nil, errors.config(operation .. " is not available on CRM.COM: " .. why, operation)
end

-- Lookups ---------------------------------------------------------------------------------------

local function participant_args(ident)
  if ident.key == "external_id" then return { external_id = ident.value } end -- the provider maps it by release
  return { [ident.key] = ident.value } -- mobile/email: an access token of the participant
end

local function mark_not_found(err)
  if err and err.kind == "api" and err.code == "NOT_FOUND" then err.not_found = true end -- [INF] sandbox code
  return err
end

-- The wallet figures: a preview of an empty basket (the documented place for a live balance).
function Backend:wallet(ident)
  local r, err = self.client:purchase_preview { participant = participant_args(ident), lines = {} }
  if not r then return nil, mark_not_found(err) end
  return r.preview
end

function Backend:lookup(ident)
  local p, r, err
  local profile = self.client.profile
  -- From R17 external_id names the accounts receivable, which rewards_participants/show cannot take:
  -- [INF] the preview alone names the participant (rewards_participant_id/name, crmcom.md §4.2).
  local by_account = ident.key == "external_id" and profile and profile.release >= 17
  if not by_account then
    r, err = self.client:participant_show(participant_args(ident))
    if not r then return nil, mark_not_found(err) end
    p = r.participant
  end
  local w
  w, err = self:wallet(ident)
  if not w then return nil, err end
  if by_account then
    local first, last = tostring(w.participant_name or ""):match("^(%S*)%s*(.-)$")
    p = { id = w.participant_id, number = ident.value,
          accounts_receivable = { account_owner = { first_name = first ~= "" and first or nil,
                                                    last_name = last ~= "" and last or nil } } }
  end
  local ar, owner, id, number, first, last
  ar, err = shape.object(r, p.accounts_receivable, "data.accounts_receivable")
  if err then return nil, err end
  owner, err = shape.object(r, (ar or {}).account_owner, "data.accounts_receivable.account_owner")
  if err then return nil, err end
  owner = owner or {}
  id, err = shape.scalar(r, p.id, "data.id")
  if not err then number, err = shape.scalar(r, p.number, "data.number") end
  if not err then first, err = shape.text(r, owner.first_name, "data.accounts_receivable.account_owner.first_name") end
  if not err then last, err = shape.text(r, owner.last_name, "data.accounts_receivable.account_owner.last_name") end
  if err then return nil, err end
  return {
    id = id, number = number, external_id = number, firstname = first, lastname = last,
    points = w.wallet_balance, value = w.wallet_balance, tier = nil,
    min_spend = w.min_spend, max_spend = w.max_spend, allow_spending = w.allow_spending,
    reduction_method = w.reduction_method, custom_fields = {}, extended_fields = {},
  }
end

function Backend.register()
  return not_carried("register", "the legacy Web API POS flow has no sign-up call")
end

function Backend.subscribe()
  return not_carried("subscribe", "the legacy Web API POS flow has no subscription call")
end

function Backend.send_otp()
  return not_carried("send_otp", "the legacy Web API has no redemption OTP")
end

--- Whether `amount` can be spent now: the CRM's per-transaction limits and eligible amount.
function Backend:check_redeemable(ident, amount)
  local w, err = self:wallet(ident)
  if not w then return nil, err end
  local why
  if not w.allow_spending then
    why = "spending is not allowed"
  elseif amount < w.min_spend then
    why = string.format("%.2f is below the minimum spend of %.2f per transaction", amount, w.min_spend)
  elseif w.max_spend and amount > w.max_spend then
    why = string.format("%.2f is above the maximum spend of %.2f per transaction", amount, w.max_spend)
  elseif amount > w.eligible_spend then
    why = string.format("%.2f is more than the %.2f that can be spent", amount, w.eligible_spend)
  end
  if why then return nil, errors.new { kind = "api", code = "OUTSIDE_SPEND_LIMITS", message = why, crm_rate = 1 } end
  return { redeemable = true, value = amount, min = w.min_spend, max = w.max_spend, rate = 1 }
end

-- The wallet is money: amounts are booked to the cent.
Backend.POINT_UNIT = 0.01

--- The wallet is money in the CRM's currency: one unit is worth one (no call needed).
function Backend.point_rate()
  return 1, "crmcom wallet (money)"
end

-- Orders ------------------------------------------------------------------------------------------

-- Store lines -> purchase lines; shipping books the Default Product (no product identifier).
-- `rules explain --crm` previews an order with the same lines (preview_lines).
local function purchase_lines(cart)
  local lines = {}
  for _, l in ipairs(type(cart.lines) == "table" and cart.lines or {}) do
    local qty = tonumber(l.qty) or 1
    lines[#lines + 1] = { code = l.sku, quantity = qty, total = tonumber(l.amount) or (tonumber(l.price) or 0) * qty,
                          vat = tonumber(l.vat) or 0 }
  end
  if type(cart.shipping) == "number" and cart.shipping > 0 then
    lines[#lines + 1] = { total = cart.shipping, vat = 0 }
  end
  return lines
end

-- The purchase of an order (created once per order id: a replay returns the first purchase).
function Backend:purchase(client, ident, order_id, cart)
  local r, err = client:purchase_create {
    participant = participant_args(ident), lines = purchase_lines(cart), reference = tostring(order_id),
    unit = self.settings.crm.unit,
  }
  if not r then return nil, mark_not_found(err) end
  return r.purchase
end

--- opts: {points, reference, bill_number, cart}: the order's purchase, then a spend request on it.
function Backend:redeem(ident, opts)
  if type(opts.cart) ~= "table" then
    return not_carried("redeem without a cart", "a spend request settles a purchase: pass redeem{…, cart = cart}")
  end
  local p, err = self:purchase(self.client, ident, opts.bill_number, opts.cart)
  if not p then return nil, err end
  local r
  r, err = self.client:spend_request_create {
    participant = participant_args(ident), purchase = { number = p.number }, amount = opts.points,
    reference = opts.reference, unit = self.settings.crm.unit,
  }
  if not r then return nil, mark_not_found(err) end
  local w = self:wallet(ident)
  local due = crmcom.amount_to_collect(p, { r.spend }, r.spend.reduction_method)
  return { redemption_id = r.spend.number, points = r.spend.actual, requested = opts.points, value = r.spend.actual,
           balance = w and w.wallet_balance, purchase_number = p.number, amount_due = due.due }
end

-- [INF] The reference of an order's own purchase when the one made for its redemption was
-- cancelled first (the held spend given back before the order came): references de-duplicate, so
-- the order needs a reference of its own, the same on every retry.
local PLACED = "#placed"
_M.PLACED_SUFFIX = PLACED

local function is_cancelled(p)
  return type(p) == "table" and type(p.state) == "string" and p.state:upper() == "CANCELLED"
end

--- The order as a purchase; points_earned is the award, amount_due what the shopper pays.
-- opts.released: the order's held spend was given back (its first purchase is cancelled).
function Backend:post_order(ident, _, order, opts)
  local client = opts and opts.till and opts.till.client or self.client
  local p, err = self:purchase(client, ident, order.id, order)
  if not p then return nil, err end
  if is_cancelled(p) and opts and opts.released then
    p, err = self:purchase(client, ident, tostring(order.id) .. PLACED, order)
    if not p then return nil, err end
  end
  local w = self:wallet(ident)
  if is_cancelled(p) then
    -- A retried order whose purchase was cancelled (returned): booked before, nothing earned now.
    return { duplicate = true, cancelled = true, transaction_id = p.number, balance = w and w.wallet_balance }
  end
  return { points_earned = p.awarded, transaction_id = p.number, balance = w and w.wallet_balance,
           amount_due = crmcom.amount_to_collect(p).due, spent = p.spent }
end

-- Cancels the purchase of `reference`: purchase | nil, nil, "cancelled" (cancelled before) |
-- nil, err, "none" (never made) | nil, err. No error catalogue is documented, so a refusal is judged by
-- the purchase's own state.
function Backend:cancel_purchase(reference)
  local r, err = self.client:purchase_cancel { reference_number = reference }
  if r then return r.purchase end
  mark_not_found(err)
  if err.kind ~= "api" then return nil, err end
  local shown, serr = self.client:purchase_show { reference_number = reference }
  if shown and is_cancelled(shown.purchase) then return nil, nil, "cancelled" end
  if not shown and (mark_not_found(serr).not_found or err.not_found) then return nil, err, "none" end
  return nil, err
end

--- Only a whole-order return carries over: purchases/cancel takes the award back and refunds
-- the spend requests made on the purchase. A retried return is {already = true}.
function Backend:post_return(ident, order, ret)
  if ret.kind ~= "FULL" then
    return not_carried("order_returned with lines or an amount",
                       "purchases/cancel cancels a whole purchase; partial returns are not in the legacy Web API")
  end
  local id = tostring(order.id)
  local p, err, state = self:cancel_purchase(id)
  if not p and state == "cancelled" then
    -- The first purchase went with its released spend: the order's own purchase, if any.
    local err2, state2
    p, err2, state2 = self:cancel_purchase(id .. PLACED)
    if not p and not state2 then return nil, err2 end
  end
  if not p and err then return nil, err end
  local w = self:wallet(ident)
  if not p then
    return { already = true, points_deducted = 0, points_reversed = 0, balance = w and w.wallet_balance }
  end
  return { points_deducted = p.awarded, points_reversed = p.spent,
           balance = w and w.wallet_balance, transaction_id = p.number }
end

--- A held spend: cancelling the order's purchase refunds its spend requests (CRM.COM's reversal).
-- A hold of unknown outcome (the redeem's reply was lost) resolves the same way: the purchase of
-- the order's reference carries whatever spend was booked, and none at all means nothing was.
function Backend:cancel_redemption(_, p)
  if p.unknown then
    local purchase, cerr, state = self:cancel_purchase(tostring(p.bill_number))
    if state == "none" then return { points_reversed = 0, nothing_booked = true, resolved = "no purchase" } end
    if state == "cancelled" then return { already = true, points_reversed = 0 } end
    if not purchase then return nil, cerr end
    return { points_reversed = purchase.spent, transaction_id = purchase.number }
  end
  local r, err = self.client:purchase_cancel { reference_number = tostring(p.bill_number) }
  if not r then return nil, mark_not_found(err) end
  return { points_reversed = r.purchase.spent, transaction_id = r.purchase.number }
end

-- Dry run ---------------------------------------------------------------------------------------

-- The documented dry run (crmcom.md §4.2): customer_events/purchases/preview books nothing.
_M.PREVIEW_NAME = "purchase preview"

--- The CRM's answer for a cart, booking nothing: program (a loyalty.program), ident, cart ->
-- { award, eligible_spend, min_spend, max_spend, wallet_balance, allow_spending, reduction_method } | nil, err.
function _M.preview(program, ident, cart)
  local who = ident.key == "external_id" and { number = ident.value } or { [ident.key] = ident.value }
  -- the lines the order would post
  local r, err = program.client:purchase_preview { participant = who, lines = purchase_lines(cart),
                                                   unit = program.settings.crm.unit }
  if not r then return nil, err end
  return r.preview
end

function Backend.reverse_redemption()
  return not_carried("reverse_redemption", "a spend request is reversed by cancelling its purchase (a full return)")
end

return _M

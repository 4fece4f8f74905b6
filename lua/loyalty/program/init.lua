-- The storefront program: what a store admin switched on, as operations a storefront calls.
-- Settings: loyalty.program.config; limits and category attributes: loyalty.rules.
local client_mod = require "loyalty.client"
local config = require "loyalty.program.config"
local errors = require "loyalty.errors"

local _M = {}

local Program = {}
Program.__index = Program

local BACKENDS = { capillary = "loyalty.program.capillary", crmcom = "loyalty.program.crmcom" }

local function refused(message, fields)
  local e = { kind = "refused", message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return nil, errors.new(e)
end

--- loyalty.program(settings | path) -> program | nil, err
function _M.new(settings)
  local s, err
  if type(settings) == "string" then
    s, err = config.load(settings)
  elseif type(settings) == "table" then
    s, err = config.check(settings)
  else
    error("loyalty.program: settings table or file path expected", 2)
  end
  if not s then return nil, err end
  local copts = { provider = s.provider, log = s.log }
  for k, v in pairs(s.crm) do copts[k] = v end
  local client
  client, err = client_mod.new(copts)
  if not client then return nil, err end
  local self = setmetatable({ settings = s, client = client, till_clients = {} }, Program)
  self.backend = require(BACKENDS[s.provider]).new(client, s)
  if s.outbox then
    local ob, oerr = require("loyalty.outbox").open(s.outbox)
    if not ob then
      client:close()
      return nil, oerr
    end
    self.outbox = ob
  end
  if s.rules then
    local rules = require "loyalty.rules"
    self.rules_watcher = rules.watch(s.rules, {
      check_interval_ms = s.rules_check_interval_ms, last_good = s.rules_last_good,
      -- rule reloads and rejected edits reach the program's log sink (ngx.log in nginx)
      log = function(level, event, fields) self:emit(level, event, fields) end,
    })
    local rs, rerr = self.rules_watcher:current()
    if not rs then return nil, rerr end
  end
  return self
end

--- Sends a structured event to the program's log sink (the client's, secrets scrubbed).
function Program:emit(level, event, fields)
  self.client:emit(level, event, fields)
end

function Program:close()
  self.client:close()
  for _, c in pairs(self.till_clients) do c:close() end
  if self.outbox then self.outbox:close() end
end

-- Outbox ---------------------------------------------------------------------------------------
-- Must-not-lose writes (orders, returns, sign-ups, subscriptions, redemption reversals) go to
-- the outbox when the direct call fails with a retryable error, or always (setting
-- outbox.always). The entry holds the client operation's argument table, never credentials: the
-- drainer resolves the till again from these settings.

-- A stand-in for a client that records the operation a backend calls; with capture_only it
-- never reaches the CRM and answers with a `captured` error instead.
local function recorder(client, capture_only)
  local rec = {}
  local ops = client.provider.ops
  local captured = function()
    return nil, errors.new { kind = "refused", message = "queued for the outbox", captured = true }
  end
  local proxy = {
    auth_header = client.auth_header,
    provider = { name = client.provider.name, ops = setmetatable({}, { __index = function(_, name)
      local op = ops[name]
      if op then return function(...) rec.kind, rec.args = name, { ... } return op(...) end end
    end }) },
  }
  function proxy.request(_, spec)
    if capture_only then return captured() end
    return client:request(spec)
  end
  setmetatable(proxy, { __index = function(_, name)
    local op = ops[name]
    if not op then return nil end
    return function(_, ...)
      rec.kind, rec.args = name, { ... }
      local spec, err = op(...)
      if not spec then return nil, err end
      if capture_only then return captured() end
      return client:request(spec)
    end
  end })
  return proxy, rec
end

-- Runs fn(backend, client) against a recording client; returns fn's results and the record.
function Program:recorded(client, fn, capture_only)
  local proxy, rec = recorder(client, capture_only or self.settings.outbox.always)
  local r, err = fn(require(BACKENDS[self.settings.provider]).new(proxy, self.settings), proxy)
  return r, err, rec
end

-- Whether a failed write goes to the outbox instead of back to the caller: when a retry may
-- succeed, or when the outcome is unknown (no reply, or one that cannot be read: the write may
-- have landed, and the replay is idempotent where the CRM allows).
local UNKNOWN_OUTCOME = { network = true, timeout = true, decode = true }
local function queueable(err)
  return err ~= nil and (err.captured == true or err.retryable == true or UNKNOWN_OUTCOME[err.kind] == true)
end

function Program:enqueue(kind, ident, rec, extra)
  if not (rec and rec.args and type(rec.args[1]) == "table") then
    return nil, errors.new { kind = "config", message = "nothing recorded to queue for " .. kind }
  end
  extra = extra or {}
  local id, err = self.outbox:put { kind = kind, customer_key = ident.key .. ":" .. ident.value,
                                    payload = rec.args[1], till = extra.till, dedupe_key = extra.dedupe_key }
  if not id then return nil, err end
  return { queued = true, outbox_id = id }
end

--- Where an order's data is posted: with use_order_store_till, the till of the store that
-- took the order (its own Basic credentials from store_tills, or OAuth attribution headers);
-- otherwise the default till. Returns { client, attribution }.
function Program:till_for(order)
  local s, code = self.settings, order.store_code
  if not (s.use_order_store_till and code) then return { client = self.client } end
  local till = s.store_tills and s.store_tills[code]
  if not till then
    if self.client.auth_header then return { client = self.client } end -- Basic: the default till
    return { client = self.client, attribution = { entity_type = "STORE_CODE", entity_code = code } }
  end
  local c = self.till_clients[code]
  if not c then
    local copts = { provider = s.provider }
    for k, v in pairs(s.crm) do copts[k] = v end
    copts.username, copts.password, copts.client_key, copts.client_secret = till.username, till.password, nil, nil
    local err
    c, err = client_mod.new(copts)
    if not c then return nil, err end
    self.till_clients[code] = c
  end
  return { client = c }
end

--- The rule set in force (reloaded when its files change), or nil without rules.
function Program:ruleset()
  if not self.rules_watcher then return nil end
  return self.rules_watcher:current()
end

-- Mobile numbers go to the CRM as digits with the country code (capillary.md §4.3).
local function clean_mobile(m)
  if type(m) ~= "string" and type(m) ~= "number" then return nil end
  local digits = tostring(m):gsub("[%s%+%-%(%)]", "")
  if digits == "" then return nil end
  return digits
end

-- Identifiers travel in URLs, headers and bill numbers: CR, LF, NUL and oversized values are
-- refused before any request is made.
local MAX_ID = 128
local function bad_value(v, max)
  if type(v) == "number" then return false end
  return type(v) ~= "string" or v == "" or #v > (max or MAX_ID) or v:find("[%z\r\n]") ~= nil
end

local function check_order_ids(order)
  if bad_value(order.id) then
    return errors.config("order id must be a non-empty single-line value of at most " .. MAX_ID .. " bytes", "order.id")
  end
  if order.store_code ~= nil and bad_value(order.store_code) then
    return errors.config("store code must be a single-line value of at most " .. MAX_ID .. " bytes", "order.store_code")
  end
  local red = order.redemption
  if type(red) == "table" and red.id ~= nil and bad_value(red.id) then
    return errors.config("redemption id must be a single-line value of at most " .. MAX_ID .. " bytes",
                         "order.redemption.id")
  end
end

-- nil, "" and JSON null (a userdata) all mean "no value".
local function blank(v)
  return v == nil or v == "" or type(v) == "userdata"
end

--- The CRM identifier of a store user, by the store's chosen unique identifier.
function Program:identify(user, allow_email)
  if type(user) ~= "table" then error("loyalty.program: user table expected", 3) end
  local key = self.settings.identifier
  local value
  local attr = key:match("^attribute:(.+)$")
  if attr then
    value = user[attr] or (type(user.attributes) == "table" and user.attributes[attr])
    key = "external_id"
  elseif key == "mobile" then
    value = clean_mobile(user.mobile)
    -- Spaces and dashes are formatting; a line break is not.
    if type(user.mobile) == "string" and user.mobile:find("[%z\r\n]") then value = user.mobile end
  else
    value = user[key]
  end
  if blank(value) and allow_email and not blank(user.email) then
    key, value = "email", user.email
  end
  if blank(value) then
    return nil, errors.config("user has no " .. self.settings.identifier .. " (the store's unique identifier)",
                              self.settings.identifier)
  end
  if bad_value(value, 256) then
    return nil, errors.config("the user's " .. key .. " must be a single-line value of at most 256 bytes", key)
  end
  return { key = key, value = tostring(value) }
end

local PROFILE_FIELDS = { "firstname", "lastname", "email", "mobile", "external_id" }

local function profile_of(self, user, ident)
  local p = {
    mobile = clean_mobile(user.mobile), email = user.email, external_id = user.external_id,
    firstname = user.firstname, lastname = user.lastname,
    custom_fields = user.custom_fields, extended_fields = user.extended_fields,
  }
  if ident.key == "external_id" then p.external_id = ident.value end
  if self.settings.identifier:match("^attribute:") then
    p.custom_fields = p.custom_fields or {}
    p.custom_fields[self.settings.identifier:sub(11)] = ident.value
  end
  return p
end

--- Posts a sign-up to the CRM. Returns {customer} or {skipped, reason} or nil, err.
function Program:register(user)
  if not self.settings.registration then return { skipped = true, reason = "CRM registration is off" } end
  local ident, err = self:identify(user)
  if not ident then return nil, err end
  local subs = self.settings.post_subscriptions and user.subscriptions or nil
  local profile = profile_of(self, user, ident)
  local c
  if self.outbox and not self.settings.registration_crm_first then
    local rec
    c, err, rec = self:recorded(self.client, function(b) return b:register(profile, subs) end)
    if not c and queueable(err) then return self:enqueue("customer_add", ident, rec) end
  else
    c, err = self.backend:register(profile, subs)
  end
  if not c then return nil, err end
  return { customer = c }
end

--- The store's sign-up flow around `create_account(user[, crm_customer])`. With
-- registration_crm_first the CRM is asked first and a refusal aborts (nil, err: tell the
-- shopper why); otherwise the store account is made first and a CRM failure is reported in
-- `crm_error` without undoing it.
function Program:sign_up(user, create_account)
  if type(create_account) ~= "function" then error("loyalty.program: sign_up needs a create_account function", 2) end
  if self.settings.registration and self.settings.registration_crm_first then
    local r, err = self:register(user)
    if not r then return nil, err end
    return { account = create_account(user, r.customer), customer = r.customer, crm_first = true }
  end
  local account = create_account(user)
  local r, err = self:register(user)
  return { account = account, customer = r and r.customer, skipped = r and r.skipped, queued = r and r.queued,
           outbox_id = r and r.outbox_id, crm_error = err }
end

-- The user's CRM identifier and record: ident, customer | ident or nil, err (err.not_found
-- when the CRM does not know the user).
function Program:customer(user)
  local ident, err = self:identify(user, true)
  if not ident then return nil, nil, err end
  local c
  c, err = self.backend:lookup(ident)
  return ident, c, err
end

--- Login: with sync_on_login, the CRM profile is merged into the user's by profile_sync.
-- Returns {profile, changed = {field...}, customer} (customer nil when not enrolled).
function Program:login(user)
  local profile = {}
  for k, v in pairs(user) do profile[k] = v end
  if not self.settings.sync_on_login then return { profile = profile, changed = {}, synced = false } end
  local _, c, err = self:customer(user)
  if not c then
    if err.not_found then return { profile = profile, changed = {}, enrolled = false } end
    return nil, err
  end
  local changed = {}
  local crm_wins = self.settings.profile_sync == "crm_wins"
  for _, f in ipairs(PROFILE_FIELDS) do
    local crm_value = c[f]
    if not blank(crm_value) then
      local mine = profile[f]
      if (crm_wins and mine ~= crm_value) or (not crm_wins and blank(mine)) then
        profile[f] = crm_value
        changed[#changed + 1] = f
      end
    end
  end
  return { profile = profile, changed = changed, customer = c, enrolled = true }
end

--- Email/SMS opt-in and opt-out: subs = {email = true|false, sms = true|false}.
function Program:subscribe(user, subs)
  if type(subs) ~= "table" then error("loyalty.program: subscriptions table expected", 2) end
  if not self.settings.post_subscriptions then
    return { skipped = true, reason = "posting subscriptions is off" }
  end
  local ident, err = self:identify(user, true)
  if not ident then return nil, err end
  if not self.outbox then return self.backend:subscribe(ident, subs) end
  local r, rec
  r, err, rec = self:recorded(self.client, function(b) return b:subscribe(ident, subs) end)
  if not r and queueable(err) then return self:enqueue("customer_subscriptions", ident, rec) end
  if not r then return nil, err end
  return r
end

-- Analysts write tiers in capitals (GOLD); CRMs spell slabs as they like.
local function rules_customer(c)
  return { tier = type(c.tier) == "string" and c.tier:upper() or nil, points = c.points }
end

-- The rules' verdict, or the CRM balance as the only limit when the store has no rules.
local function verdict(self, customer, cart, requested)
  local rs, err = self:ruleset()
  if rs then return rs:redemption(rules_customer(customer), cart, requested) end
  if err then return nil, err end
  local points = requested or customer.points
  local reason = "within balance"
  if customer.points <= 0 then
    reason = "no points"
  elseif points > customer.points then
    reason = "more than the balance of " .. customer.points .. " points"
  end
  return {
    allowed = customer.points > 0 and points <= customer.points, min = 0, max = customer.points,
    points = math.min(points, customer.points), reason = reason,
  }
end

--- The points summary for a logged-in user, ready to render.
function Program:summary(user)
  local _, c, err = self:customer(user)
  if not c then
    if err.not_found then return { enrolled = false, points = 0, can_redeem = false } end
    return nil, err
  end
  local v
  v, err = verdict(self, c, nil, nil)
  if not v then return nil, err end
  local rs = self:ruleset()
  return {
    enrolled = true, points = c.points, tier = c.tier, lifetime_points = c.lifetime_points,
    value = v.value, currency = rs and rs.currency or v.currency,
    can_redeem = v.allowed, min = v.min, max = v.max, multiple_of = v.multiple_of, reason = v.reason,
  }
end

--- What can be redeemed on this cart and what it is worth; limits are checked by the rules
-- first, then the CRM confirms the amount (so checkout never offers what it would refuse).
function Program:quote_redemption(user, cart, points)
  if type(cart) ~= "table" then error("loyalty.program: cart table expected", 2) end
  local ident, c, err = self:customer(user)
  if not c then return nil, err end
  local v
  v, err = verdict(self, c, cart, points)
  if not v then return nil, err end
  local quote = { allowed = v.allowed, points = v.points, value = v.value, min = v.min, max = v.max,
                  multiple_of = v.multiple_of, reason = v.reason, balance = c.points }
  if not v.allowed then return quote end
  local crm
  crm, err = self.backend:check_redeemable(ident, v.points)
  if not crm then
    if err.kind ~= "api" then return nil, err end
    quote.allowed, quote.reason, quote.code = false, "the CRM refuses: " .. tostring(err.message), err.code
    return quote
  end
  quote.value = crm.value or quote.value
  return quote
end

--- Sends the redemption OTP to the shopper (unless the store skips OTPs).
function Program:send_otp(user, points)
  if self.settings.skip_redemption_otp then return { skipped = true, reason = "redemption OTP is skipped" } end
  if type(points) ~= "number" then error("loyalty.program: points number expected", 2) end
  local ident, err = self:identify(user, true)
  if not ident then return nil, err end
  return self.backend:send_otp(ident, points)
end

--- Redeems points for an order: {points, otp, order_id, cart}. Idempotent per order: a
-- retried redeem carries the same external reference and never debits twice.
function Program:redeem(user, req)
  if type(req) ~= "table" or type(req.points) ~= "number" or req.order_id == nil then
    error("loyalty.program: redeem needs {points = number, order_id = ...}", 2)
  end
  if bad_value(req.order_id) then
    return nil, errors.config("order id must be a non-empty single-line value of at most " .. MAX_ID .. " bytes",
                              "order_id")
  end
  local skip = self.settings.skip_redemption_otp
  if not skip and (req.otp == nil or req.otp == "") then
    return refused("an OTP is required to redeem points", { field = "otp" })
  end
  local ident, c, err = self:customer(user)
  if not c then return nil, err end
  -- The analyst's limits are checked here; the balance is the CRM's to judge (803), so that a
  -- retried redeem for the same order reaches the CRM and gets its original redemption back.
  local v
  v, err = verdict(self, { tier = c.tier, points = math.max(c.points, req.points) }, req.cart, req.points)
  if not v then return nil, err end
  if not v.allowed or v.points ~= req.points then
    return refused(v.reason or "outside the redemption limits",
                   { min = v.min, max = v.max, multiple_of = v.multiple_of })
  end
  local r
  r, err = self.backend:redeem(ident, {
    points = req.points, otp = not skip and req.otp or nil, skip_otp = skip,
    reference = "redeem-" .. tostring(req.order_id), bill_number = tostring(req.order_id), cart = req.cart,
  })
  if not r then return nil, err end
  r.value = r.value or v.value
  return r
end

local function cart_of(order)
  return { lines = order.lines, shipping = order.shipping, tax = order.tax, total = order.total }
end

--- Posts a successful order so it earns points. Returns {points_earned, balance, estimate,
-- rules_hash} or {skipped, reason}, or nil, err with err.order_id: the caller keeps the order
-- for a later replay (never drop it).
function Program:order_placed(user, order)
  if type(order) ~= "table" or order.id == nil or type(order.lines) ~= "table" then
    error("loyalty.program: order with id and lines expected", 2)
  end
  local s = self.settings
  local bad = check_order_ids(order)
  if bad then return nil, bad end
  if not s.earn_on_order then return { skipped = true, reason = "earning on orders is off" } end
  local email_only = blank(user.mobile) and not blank(user.email)
  if email_only and not s.post_email_only_orders then
    return { skipped = true, reason = "email-only orders are not posted" }
  end
  local ident, err = self:identify(user, s.post_email_only_orders)
  if not ident then return nil, err end
  local rs
  rs, err = self:ruleset()
  if not rs and err then return nil, err end
  local till
  till, err = self:till_for(order)
  if not till then return nil, err end
  local opts = { custom_fields = {}, till = till }
  local estimate
  if rs then
    opts.attributes_of = function(line) return rs:line_attributes(line) end
    opts.custom_fields.rules_hash = rs.hash
    local e = rs:earn(rules_customer { tier = user.tier, points = 0 }, cart_of(order))
    estimate = e and e.points
  end
  local r
  if self.outbox then
    local rec
    r, err, rec = self:recorded(till.client or self.client, function(b, proxy)
      opts.till = { client = proxy, attribution = till.attribution }
      return b:post_order(ident, profile_of(self, user, ident), order, opts)
    end)
    if not r and queueable(err) then
      local code = s.use_order_store_till and order.store_code or nil
      local crm_err = not err.captured and err or nil
      r, err = self:enqueue("transaction_add", ident, rec,
                            { till = code and tostring(code), dedupe_key = "bill:" .. tostring(order.id) })
      if r then r.crm_error = crm_err end
    end
  else
    r, err = self.backend:post_order(ident, profile_of(self, user, ident), order, opts)
  end
  if not r then
    err.order_id = order.id
    return nil, err
  end
  r.estimate, r.rules_hash = estimate, rs and rs.hash
  return r
end

-- 16 hex digits that no other process or call repeats: from the kernel's random source, else
-- from the clock, a fresh table's address and a per-process counter.
local return_seq = 0
local function unique_hex()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(8)
  if f then f:close() end
  if bytes and #bytes == 8 then return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
  return_seq = return_seq + 1
  local core = require "loyalty.core"
  return core.md5_hex(table.concat({ os.time(), core.now(), tostring({}), return_seq }, ":")):sub(1, 16)
end

-- The reference a return carries to the CRM (loyalty_return_ref), fixed before its first attempt:
-- a whole-order return happens once per order; each partial return is its own.
local function return_ref(order, kind)
  if kind == "FULL" then return "return:" .. tostring(order.id) end
  return "return:" .. tostring(order.id) .. ":" .. unique_hex()
end

--- A return: `ret` nil = the whole order; {lines = {...}} = those lines; {amount = n}.
-- Earned points come back as the CRM computes; a full return also reverses the redemption.
function Program:order_returned(user, order, ret)
  if type(order) ~= "table" or order.id == nil then error("loyalty.program: order with id expected", 2) end
  local bad = check_order_ids(order)
  if bad then return nil, bad end
  local ident, err = self:identify(user, self.settings.post_email_only_orders)
  if not ident then return nil, err end
  local kind = "FULL"
  if ret and ret.lines then kind = "LINE_ITEM" elseif ret and ret.amount then kind = "AMOUNT" end
  local amount = ret and ret.amount
  if kind == "LINE_ITEM" then
    amount = 0
    for _, l in ipairs(ret.lines) do amount = amount + (l.amount or (l.price or 0) * (l.qty or 1)) end
  end
  local till
  till, err = self:till_for(order)
  if not till then return nil, err end
  local red = order.redemption
  local reverse = kind == "FULL" and red and red.id
  local ref = return_ref(order, kind)
  if self.outbox then return self:return_via_outbox(ident, order, kind, ret, amount, till, reverse and red, ref) end
  local r
  r, err = self.backend:post_return(ident, order, { kind = kind, lines = ret and ret.lines, amount = amount,
                                                    till = till, ref = ref })
  if not r then
    err.order_id = order.id
    return nil, err
  end
  if reverse and r.points_reversed == nil then -- CRM.COM's cancel already refunded the spend
    local rev
    rev, err = self.backend:reverse_redemption(ident, red.id, red.points)
    if not rev then
      err.order_id = order.id
      return nil, err
    end
    r.points_reversed = rev.points_reversed
  end
  r.kind = kind
  return r
end

-- order_returned with an outbox: a return that cannot be posted now is queued, and so is its
-- redemption reversal, behind it in the customer's line.
-- The entry's dedupe key is the return's reference (loyalty_return_ref, also in its payload).
function Program:return_via_outbox(ident, order, kind, ret, amount, till, red, ref)
  local s = self.settings
  local code = s.use_order_store_till and order.store_code or nil
  local r, err, rec = self:recorded(till.client or self.client, function(b, proxy)
    return b:post_return(ident, order, { kind = kind, lines = ret and ret.lines, amount = amount, ref = ref,
                                         till = { client = proxy, attribution = till.attribution } })
  end)
  local queued = false
  if not r and queueable(err) then
    local crm_err = not err.captured and err or nil
    r, err = self:enqueue("transaction_return", ident, rec, { till = code and tostring(code), dedupe_key = ref })
    if r then r.crm_error, queued = crm_err, true end
  end
  if not r then
    err.order_id = order.id
    return nil, err
  end
  r.kind = kind
  if not red then return r end
  -- With the return queued, the reversal is only captured: it must not overtake its return.
  local rev, rrec
  rev, err, rrec = self:recorded(self.client, function(b) return b:reverse_redemption(ident, red.id, red.points) end,
                                 queued)
  if not rev and queueable(err) then
    rev, err = self:enqueue("points_reverse", ident, rrec, { dedupe_key = "reverse:" .. tostring(red.id) })
    if rev then r.reversal_queued, r.reversal_outbox_id = true, rev.outbox_id end
  elseif rev then
    r.points_reversed = rev.points_reversed
  end
  if not rev then
    err.order_id = order.id
    return nil, err
  end
  return r
end

return _M

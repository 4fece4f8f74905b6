-- The storefront program: what a store admin switched on, as operations a storefront calls.
-- Settings: loyalty.program.config; limits and category attributes: loyalty.rules.
local client_mod = require "loyalty.client"
local config = require "loyalty.program.config"
local errors = require "loyalty.errors"
local util = require "loyalty.util"
local money = require "loyalty.program.money"
local ledger = require "loyalty.program.ledger"
local holds_mod = require "loyalty.program.holds"
local providers = require "loyalty.providers"

local _M = {}

local Program = {}
Program.__index = Program

local crm_limit_refusal -- below: a CRM redemption-limit refusal, named and warned

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
  local self = setmetatable({ settings = s, client = client, till_clients = {}, attr_idents = {}, attr_count = 0 },
                             Program)
  -- The provider's storefront mapping: the store verbs in its operations (loyalty.providers).
  self.storefront = assert(providers.storefront(s.provider))
  self.backend = self.storefront.new(client, s)
  self.clock = s.clock or require("loyalty.outbox").clock
  self.holds = holds_mod.new(self)
  -- Shopper-facing reads answer within their own, shorter deadline (a header widget must not wait).
  self.read_client = client:with_timeout(s.shopper_timeout_ms)
  if s.outbox then
    local ok, ob, oerr = pcall(require("loyalty.outbox").open, s.outbox)
    if not ok then ob, oerr = nil, errors.config("outbox settings refused: " .. tostring(ob), "outbox") end
    if not ob and oerr.kind ~= "storage" then
      client:close()
      return nil, oerr
    end
    if not ob then
      -- A corrupt, missing or locked store must not keep the store from serving reads: writes
      -- that need the outbox fail with a storage error (saying why) until it can be opened.
      ob = require("loyalty.outbox.guard").new(s.outbox, oerr, function(...) self:emit(...) end)
      self:emit("error", "outbox_unavailable", { reason = ob.reason })
    end
    self.outbox = ob
  end
  if s.order_log then -- issue 20: every posted order appended for rules replay and drift
    self.order_log = require("loyalty.program.order_log").open(s.order_log, function(...) self:emit(...) end)
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

-- A client stand-in that notes the request id of every CRM call made through it (results and
-- errors alike), so that each program result can name the calls behind it.
local function tracer(client, ids)
  return setmetatable({}, { __index = function(_, name)
    local v = client[name]
    if type(v) ~= "function" then return v end
    return function(_, ...)
      local a, b = v(client, ...)
      local r = a or b
      if type(r) == "table" and r.request_id ~= nil then ids[#ids + 1] = r.request_id end
      return a, b
    end
  end })
end
_M.tracer = tracer

--- A backend over a tracing client, and the list its calls' request ids go to.
function Program:traced(client, ids)
  ids = ids or {}
  return self.storefront.new(tracer(client or self.client, ids), self.settings), ids
end

-- err with the request ids of the calls behind it (a table error only).
local function with_ids(err, ids)
  if type(err) == "table" then
    err.request_ids = ids
    if err.request_id ~= nil and #ids == 0 then ids[1] = err.request_id end
  end
  return err
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
local function recorder(client, capture_only, ids)
  local rec = {}
  if ids then client = tracer(client, ids) end
  local ops = client.provider.ops
  -- A provider with a profile takes it as its operations' first argument (as client methods do).
  local profile, profiled = client.profile, client.provider.profile ~= nil
  local function spec_of(op, ...)
    if profiled then return op(profile, ...) end
    return op(...)
  end
  local captured = function()
    return nil, errors.new { kind = "refused", message = "queued for the outbox", captured = true }
  end
  local proxy = {
    auth_header = client.auth_header, profile = profile,
    provider = { name = client.provider.name, profile = client.provider.profile,
                 ops = setmetatable({}, { __index = function(_, name)
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
      local spec, err = spec_of(op, ...)
      if not spec then return nil, err end
      if capture_only then return captured() end
      return client:request(spec)
    end
  end })
  return proxy, rec
end

-- Runs fn(backend, client) against a recording client; returns fn's results and the record.
function Program:recorded(client, fn, capture_only, ids)
  local proxy, rec = recorder(client, capture_only or self.settings.outbox.always, ids)
  local r, err = fn(self.storefront.new(proxy, self.settings), proxy)
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
  -- The credentials in use (the default till's and every store till's): none may be stored.
  local secrets = {}
  for _, c in pairs(self.till_clients) do
    for _, v in ipairs(c.secrets) do secrets[#secrets + 1] = v end
  end
  for _, v in ipairs(self.client.secrets) do secrets[#secrets + 1] = v end
  -- Whatever goes wrong storing it is a storage error: the caller still has the order.
  local ok, id, err = pcall(self.outbox.put, self.outbox, {
    kind = kind, customer_key = ident.key .. ":" .. ident.value, payload = rec.args[1], till = extra.till,
    dedupe_key = extra.dedupe_key, secrets = secrets,
  })
  if not ok then
    id, err = nil, require("loyalty.outbox").storage_error("the outbox could not store the entry: " .. tostring(id))
  end
  if not id then
    self:emit("error", "outbox_put_failed", { kind = kind, reason = err and err.message })
    return nil, err
  end
  self:emit("info", "write_queued", { kind = kind, outbox_id = id })
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
  local rs, err = self.rules_watcher:current()
  if rs and rs.hash ~= self.rules_checked and self.crm_rate then
    -- A rule set just loaded is checked against the CRM's rate at once (point_value_mismatch).
    self.rules_checked = rs.hash
    money.check_rules(self, rs)
  end
  return rs, err
end

-- Mobile numbers go to the CRM as digits with the country code.
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
  return not util.single_line(v, max or MAX_ID)
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

-- Money and quantities in order data: a number, or text that reads as one (a form's "2"); never
-- NaN or infinite. -> a copy with numbers | nil, err naming the field (with the order id: the
-- caller keeps the order). Checked before any request, so that no store data raises.
local ORDER_NUMBERS = { "total", "gross", "discount", "shipping", "tax" }
local LINE_NUMBERS = { "qty", "price", "amount", "discount" }

local function finite(v)
  local x = tonumber(v)
  if type(v) ~= "number" and type(v) ~= "string" then x = nil end
  if x and x == x and x > -math.huge and x < math.huge then return x end
end

local function number_fields(t, names, prefix, order_id)
  local out
  for _, k in ipairs(names) do
    local v = t[k]
    if v ~= nil and type(v) ~= "userdata" then
      local x = finite(v)
      if not x then
        local e = errors.config(prefix .. k .. " must be a finite number, got " ..
                                (type(v) == "string" and ("%q"):format(v:sub(1, 40)) or type(v)), prefix .. k)
        e.order_id = order_id
        return nil, e
      end
      if x ~= v then
        out = out or {}
        out[k] = x
      end
    end
  end
  if not out then return t end
  local copy = {}
  for k, v in pairs(t) do copy[k] = v end
  for k, v in pairs(out) do copy[k] = v end
  return copy
end

local function checked_lines(lines, prefix, order_id)
  if lines == nil then return nil end
  if type(lines) ~= "table" then
    local e = errors.config(prefix .. " must be a list of lines", prefix)
    e.order_id = order_id
    return nil, e
  end
  local out = {}
  for i, l in ipairs(lines) do
    local where = prefix .. "[" .. i .. "]"
    if type(l) ~= "table" then
      local e = errors.config(where .. " must be a table (a line of the order)", where)
      e.order_id = order_id
      return nil, e
    end
    local c, err = number_fields(l, LINE_NUMBERS, where .. ".", order_id)
    if not c then return nil, err end
    for _, k in ipairs { "sku", "serial" } do
      local v = l[k]
      if v ~= nil and type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "userdata" then
        local e = errors.config(where .. "." .. k .. " must be text or a number, got " .. type(v), where .. "." .. k)
        e.order_id = order_id
        return nil, e
      end
    end
    out[i] = c
  end
  return out
end

-- An order id as text, the same on every VM: 2001, 2001.0 (a JSON number under Lua 5.4) and
-- "2001" are one order (one bill number, one hold).
local function id_text(v)
  if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
  if type(v) == "number" then return tostring(v) end
  return v
end
_M.id_text = id_text

--- The order with its numbers checked (and numbers written as text read as numbers).
local function checked_order(order)
  local o, err = number_fields(order, ORDER_NUMBERS, "order.", order.id)
  if not o then return nil, err end
  local lines
  lines, err = checked_lines(order.lines, "order.lines", order.id)
  if err then return nil, err end
  local red = o.redemption
  if red ~= nil and type(red) ~= "table" and type(red) ~= "userdata" then
    err = errors.config("order.redemption must be a table {id, points, value}", "order.redemption")
    err.order_id = order.id
    return nil, err
  end
  if o == order then
    o = {}
    for k, v in pairs(order) do o[k] = v end
  end
  o.lines = lines
  o.id = id_text(o.id)
  if type(red) == "userdata" then o.redemption = nil end
  return o
end

-- nil, "" and JSON null (a userdata) all mean "no value".
local function blank(v)
  return v == nil or v == "" or type(v) == "userdata"
end

-- A custom-attribute value travels inside a search query: its grammar's separators are refused.
local function bad_attribute_value(v)
  return bad_value(v, 256) or tostring(v):find("[():&;]") ~= nil
end

local ATTR_CACHE_MAX = 10000

-- The CRM identifier of the member who carries the custom attribute `attr` = value: the CRM's
-- custom-field search first; else the user's mobile or email (whom the CRM may know already, so
-- that no second record is made). Found members are remembered (per program).
function Program:attribute_ident(user, attr, value)
  local cache = self.attr_idents
  local hit = cache[value]
  if hit then return hit end
  local mobile = clean_mobile(user.mobile)
  local fallback = (mobile and { key = "mobile", value = mobile })
    or (not blank(user.email) and { key = "email", value = tostring(user.email) }) or nil
  if fallback then fallback.attribute, fallback.attribute_value, fallback.found_by = attr, value, fallback.key end
  if not self.backend.find_by_attribute then -- a CRM without custom-field search: the attribute is its number
    return { key = "external_id", value = value, attribute = attr, attribute_value = value }
  end
  local found, err = self.backend:find_by_attribute(attr, value)
  if found then
    found.attribute, found.attribute_value, found.found_by = attr, value, "attribute"
    if found.ambiguous then
      self:emit("warn", "attribute_ambiguous", { attribute = attr, members = found.ambiguous })
    end
    if self.attr_count >= ATTR_CACHE_MAX then self.attr_idents, self.attr_count = {}, 0 end
    self.attr_idents[value], self.attr_count = found, self.attr_count + 1
    return found
  end
  if fallback then return fallback end
  if err then return nil, err end
  return nil, errors.config("no CRM member carries " .. attr .. " = this value, and the user has no mobile or " ..
                            "email to register with", self.settings.identifier)
end

--- The CRM identifier of a store user, by the store's chosen unique identifier.
function Program:identify(user, allow_email)
  if type(user) ~= "table" then error("loyalty.program: user table expected", 3) end
  local key = self.settings.identifier
  local value
  local attr = key:match("^attribute:(.+)$")
  if attr then
    value = user[attr] or (type(user.attributes) == "table" and user.attributes[attr])
    if not blank(value) then
      if bad_attribute_value(value) then
        return nil, errors.config("the user's " .. attr .. " must be a single-line value of at most 256 bytes" ..
                                  " without ( ) : & ;", attr)
      end
      return self:attribute_ident(user, attr, tostring(value))
    end
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

local function profile_of(_, user, ident)
  local p = {
    mobile = clean_mobile(user.mobile), email = user.email, external_id = user.external_id,
    firstname = user.firstname, lastname = user.lastname,
    custom_fields = type(user.custom_fields) == "table" and user.custom_fields or nil,
    extended_fields = type(user.extended_fields) == "table" and user.extended_fields or nil,
  }
  if ident.key == "external_id" and not ident.attribute then p.external_id = ident.value end
  if ident.attribute then
    p.custom_fields = p.custom_fields or {}
    p.custom_fields[ident.attribute] = ident.attribute_value
  end
  return p
end

--- Posts a sign-up to the CRM. Returns {customer} or {skipped, reason} or nil, err.
function Program:register(user)
  if not self.settings.registration then return { skipped = true, reason = "CRM registration is off" } end
  for _, key in ipairs { "custom_fields", "extended_fields", "subscriptions" } do
    local v = type(user) == "table" and user[key]
    if v ~= nil and v ~= false and type(v) ~= "table" and type(v) ~= "userdata" then
      return nil, errors.config("the user's " .. key .. " must be a table, got " .. type(v), key)
    end
  end
  local ident, err = self:identify(user)
  if not ident then return nil, err end
  local subs = self.settings.post_subscriptions and type(user.subscriptions) == "table" and user.subscriptions or nil
  local profile = profile_of(self, user, ident)
  if ident.attribute and self.backend.link_attribute then
    -- Never a second record: a member found by the attribute is already registered, and one the
    -- CRM knows by mobile or email gets the attribute added to that record.
    local b, ids = self:traced()
    local known, lerr = b:lookup(ident)
    if not known and not lerr.not_found then return nil, with_ids(lerr, ids) end
    if known and ident.found_by == "attribute" then
      return { customer = known, existing = true, request_ids = ids }
    end
    if known then
      local linked
      linked, lerr = b:link_attribute(ident, ident.attribute, ident.attribute_value)
      if not linked then return nil, with_ids(lerr, ids) end
      self.attr_idents[ident.attribute_value] = nil
      return { customer = linked, linked = true, request_ids = ids }
    end
  end
  local c
  if self.outbox and not self.settings.registration_crm_first then
    local rec
    c, err, rec = self:recorded(self.client, function(b) return b:register(profile, subs) end)
    if not c and queueable(err) then return self:enqueue("customer_add", ident, rec) end
  else
    c, err = self.backend:register(profile, subs)
  end
  if not c then return nil, err end
  if c.queued then return c end
  return { customer = c, partial = c.partial, failed = c.failed, request_ids = { c.request_id } }
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
    return { account = create_account(user, r.customer), customer = r.customer, crm_first = true,
             existing = r.existing, linked = r.linked, partial = r.partial, failed = r.failed,
             request_ids = r.request_ids }
  end
  local account = create_account(user)
  local r, err = self:register(user)
  return { account = account, customer = r and r.customer, skipped = r and r.skipped, queued = r and r.queued,
           outbox_id = r and r.outbox_id, crm_error = err, partial = r and r.partial, failed = r and r.failed,
           request_ids = r and r.request_ids or (err and err.request_id and { err.request_id }) or nil }
end

-- The user's CRM identifier and record: ident, customer | ident or nil, err (err.not_found
-- when the CRM does not know the user).
function Program:customer(user, backend)
  local ident, err = self:identify(user, true)
  if not ident then return nil, nil, err end
  local c
  c, err = (backend or self.backend):lookup(ident)
  return ident, c, err
end

--- Login: with sync_on_login, the CRM profile is merged into the user's by profile_sync.
-- Returns {profile, changed = {field...}, customer} (customer nil when not enrolled).
function Program:login(user)
  local profile = {}
  for k, v in pairs(user) do profile[k] = v end
  if not self.settings.sync_on_login then return { profile = profile, changed = {}, synced = false } end
  local b, ids = self:traced(self.read_client)
  local _, c, err = self:customer(user, b)
  if not c then
    if err.not_found then return { profile = profile, changed = {}, enrolled = false, request_ids = ids } end
    return nil, with_ids(err, ids)
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
  return { profile = profile, changed = changed, customer = c, enrolled = true, request_ids = ids }
end

--- Email/SMS opt-in and opt-out: subs = {email = true|false, sms = true|false}.
function Program:subscribe(user, subs)
  if type(subs) ~= "table" then error("loyalty.program: subscriptions table expected", 2) end
  if not self.settings.post_subscriptions then
    return { skipped = true, reason = "posting subscriptions is off" }
  end
  local ident, err = self:identify(user, true)
  if not ident then return nil, err end
  local b, ids = self:traced()
  local r, rec
  if not self.outbox then
    r, err = b:subscribe(ident, subs)
  else
    r, err, rec = self:recorded(self.client, function(bk) return bk:subscribe(ident, subs) end, nil, ids)
    if not r and queueable(err) then
      r, err = self:enqueue("customer_subscriptions", ident, rec)
    end
  end
  if not r then return nil, with_ids(err, ids) end
  r.request_ids = ids
  if r.partial then
    -- A failed opt-out is a compliance matter: never reported as done.
    local names = {}
    for _, f in ipairs(r.failed or {}) do names[#names + 1] = tostring(f.item) .. " (" .. tostring(f.code) .. ")" end
    self:emit("warn", "subscription_partial", { failed = table.concat(names, ", ") })
  end
  return r
end

-- The programme id a redeem was sent with (replayed with it when its outcome must be resolved).
local function s_program_id(self)
  return self.settings.program_id or self.backend.learned_program_id
end

-- Analysts write tiers in capitals (GOLD); CRMs spell slabs as they like.
local function rules_customer(c)
  return { tier = type(c.tier) == "string" and c.tier:upper() or nil, points = c.points }
end

-- The rules' own verdict with no points asked: their limits, minimum, step and refusals (nil
-- without rules). Money is never taken from it: see money.verdict.
local function rules_base(self, customer, cart)
  local rs, err = self:ruleset()
  if rs then return rs:redemption(rules_customer(customer), cart, nil) end
  if err then return nil, err end
  return false
end

-- The CRM's value of one point: cached for point_value_ttl_s, else asked (isredeemable for the
-- customer's balance). nil, err when the CRM cannot say.
function Program:point_value(ident, c, b)
  local rate = money.cached(self, c and c.tier)
  if rate then
    money.check_rules(self) -- a new rule set is checked against the rate it already knows
    return rate
  end
  local source
  rate, source = (b or self.backend):point_rate(ident, c and c.points)
  if not rate then return nil, source end
  money.learn(self, rate, source, c and c.tier)
  return rate
end

-- A money verdict at the CRM's rate (see money.verdict); nil, err on a rule or CRM failure.
local function verdict(self, c, rate, cart, requested, balance)
  if type(cart) == "table" and type(cart.lines) ~= "table" then -- an order total without its lines
    cart = { total = money.total_of(cart), lines = {}, currency = cart.currency }
  end
  local base, err = rules_base(self, { tier = c.tier, points = balance or c.points }, cart)
  if base == nil then return nil, err end
  local total = cart ~= nil and money.total_of(cart) or nil
  local crm = { max = c.max_spend, min = c.min_spend, unit = self.backend.POINT_UNIT }
  local v = money.verdict(base or nil, balance or c.points, rate, total, requested, crm)
  v.cart_total = total
  return v
end

-- A refusal by the CRM's own redemption limits (the storefront's limit_refusal names the limit):
-- the local rules allowed what the CRM refuses. The refusal stays, named, and the disagreement is a
-- loud warning for whoever owns the rules.
function crm_limit_refusal(self, err, points, operation)
  local named = self.storefront.limit_refusal
  local limit = named and named(err)
  if not limit then return nil end
  self:emit("warn", "rules_looser_than_crm", { operation = operation, code = tonumber(err.code), limit = limit,
            points = points, crm_message = err.message })
  return limit
end

--- The points summary for a logged-in user, ready to render: `value` is what the balance is
-- worth at the CRM's rate (nil with `value_unknown` when the CRM does not say), `max_value` what
-- the most redeemable points are worth.
function Program:summary(user)
  local b, ids = self:traced(self.read_client)
  local ident, err = self:identify(user, true)
  if not ident then return nil, err end
  local c
  c, err = b:lookup(ident)
  if not c then
    if err.not_found then return { enrolled = false, points = 0, can_redeem = false, request_ids = ids } end
    return nil, with_ids(err, ids)
  end
  local rs = self:ruleset()
  local out = { enrolled = true, points = c.points, tier = c.tier, lifetime_points = c.lifetime_points,
                currency = rs and rs.currency or c.currency, request_ids = ids }
  local rate, rerr = self:point_value(ident, c, b)
  if not rate then
    -- Never a local guess: without the CRM's rate the value is unknown, and says why.
    out.value_unknown = "the CRM did not say what a point is worth: " .. tostring(rerr and rerr.message or rerr)
    out.can_redeem, out.reason = false, out.value_unknown
    return out
  end
  local v
  v, err = verdict(self, c, rate, nil, nil)
  if not v then return nil, with_ids(err, ids) end
  out.point_value, out.value, out.max_value = rate, money.money((tonumber(c.points) or 0) * rate), v.value
  out.can_redeem, out.min, out.max, out.multiple_of, out.reason = v.allowed, v.min, v.max, v.multiple_of, v.reason
  out.point_value_mismatch = self.point_value_mismatch
  return out
end

--- What can be redeemed on this cart and what it is worth; limits are checked in money at the
-- CRM's rate first, then the CRM confirms the amount (so checkout never offers what it would refuse).
function Program:quote_redemption(user, cart, points)
  if type(cart) ~= "table" then error("loyalty.program: cart table expected", 2) end
  if points ~= nil then
    -- The points a shopper typed: text that reads as a finite number is that number.
    local x = finite(points)
    if not x then
      return refused("the points to quote must be a finite number", { field = "points" })
    end
    points = x
  end
  if not money.total_of(cart) then
    return refused("a redemption quote needs the cart's total (cart.total or its lines)", { field = "cart" })
  end
  local b, ids = self:traced(self.read_client)
  local ident, err = self:identify(user, true)
  if not ident then return nil, err end
  local c
  c, err = b:lookup(ident)
  if not c then return nil, with_ids(err, ids) end
  local rate
  rate, err = self:point_value(ident, c, b)
  if not rate then return nil, with_ids(err, ids) end
  local v
  v, err = verdict(self, c, rate, cart, points)
  if not v then return nil, with_ids(err, ids) end
  local quote = { allowed = v.allowed, points = v.points, value = v.value, min = v.min, max = v.max,
                  multiple_of = v.multiple_of, reason = v.reason, balance = c.points, point_value = rate,
                  max_share = v.max_share, max_share_value = v.max_share_value, cart_total = v.cart_total,
                  request_ids = ids }
  if not v.allowed then return quote end
  local crm
  crm, err = b:check_redeemable(ident, v.points)
  if not crm then
    if err.kind ~= "api" then return nil, with_ids(err, ids) end
    if err.crm_rate then money.learn(self, err.crm_rate, "points/isredeemable", c.tier) end
    quote.allowed, quote.reason, quote.code = false, "the CRM refuses: " .. tostring(err.message), err.code
    quote.crm_limit = crm_limit_refusal(self, err, v.points, "quote_redemption")
    return quote
  end
  if crm.rate then money.learn(self, crm.rate, "points/isredeemable", c.tier) end
  quote.value = crm.value or (crm.rate and money.money(v.points * crm.rate)) or quote.value
  if crm.rate then quote.point_value = crm.rate end
  quote.point_value_mismatch = self.point_value_mismatch
  if quote.max_share_value and quote.value > quote.max_share_value + 0.005 then
    -- The CRM pays more per point than the rate just used: never offer past the cap in money.
    quote.allowed, quote.reason = false, string.format("Not allowed: %s points pay %.2f at the CRM's rate, above" ..
      " the %.2f the share limit allows.", v.points, quote.value, quote.max_share_value)
  end
  return quote
end

--- Sends the redemption OTP to the shopper (unless the store skips OTPs).
function Program:send_otp(user, points)
  if self.settings.skip_redemption_otp then return { skipped = true, reason = "redemption OTP is skipped" } end
  if type(points) ~= "number" then error("loyalty.program: points number expected", 2) end
  local b, ids = self:traced()
  local ident, err = self:identify(user, true)
  if not ident then return nil, err end
  local r
  r, err = b:send_otp(ident, points)
  if not r then return nil, with_ids(err, ids) end
  r.request_ids = ids
  return r
end

--- Redeems points for an order: {points, otp, order_id, cart | total}. Idempotent per order: a
-- retried redeem carries the same external reference and never debits twice. The redemption is
-- a hold on the order until order_placed (placed), cancel_redemption (cancelled) or
-- redemption_hold_s pass without the order (expired: the drainer gives the points back).
function Program:redeem(user, req)
  if type(req) ~= "table" or type(req.points) ~= "number" or req.order_id == nil then
    error("loyalty.program: redeem needs {points = number, order_id = ...}", 2)
  end
  if bad_value(req.order_id) then
    return nil, errors.config("order id must be a non-empty single-line value of at most " .. MAX_ID .. " bytes",
                              "order_id")
  end
  if type(req.order_id) == "number" then
    local r2 = {}
    for k, v in pairs(req) do r2[k] = v end
    r2.order_id = id_text(req.order_id)
    req = r2
  end
  local cart = req.cart or req.total
  if not money.total_of(cart) then
    return refused("a redemption needs the cart (or the order total) it pays for", { field = "cart" })
  end
  local skip = self.settings.skip_redemption_otp
  if not skip and (req.otp == nil or req.otp == "") then
    return refused("an OTP is required to redeem points", { field = "otp" })
  end
  local b, ids = self:traced()
  local ident, err = self:identify(user, true)
  if not ident then return nil, err end
  -- A retried redeem for an order whose points were given back would get the CRM's original (and
  -- reversed) redemption again: the order needs a new redemption under a new order id.
  local prior = self.holds:find(req.order_id)
  if prior and (prior.state == "cancelled" or prior.state == "expired") then
    return refused("the points redeemed for order " .. tostring(req.order_id) .. " were given back (" .. prior.state ..
                   "); redeem for a new order id", { code = "redemption_released", order_id = req.order_id })
  end
  local c
  c, err = b:lookup(ident)
  if not c then return nil, with_ids(err, ids) end
  local rate
  rate, err = self:point_value(ident, c, b)
  if not rate then return nil, with_ids(err, ids) end
  -- The analyst's limits (share caps in money at the CRM's rate) are checked here; the balance is
  -- the CRM's to judge (its refusal), so that a retried redeem for the same order reaches the CRM and gets
  -- its original redemption back.
  local v
  v, err = verdict(self, c, rate, type(cart) == "table" and cart or { total = cart }, req.points,
                   math.max(tonumber(c.points) or 0, req.points))
  if not v then return nil, with_ids(err, ids) end
  if not v.allowed or v.points ~= req.points then
    local e = select(2, refused(v.reason or "outside the redemption limits",
                                { min = v.min, max = v.max, multiple_of = v.multiple_of,
                                  max_share_value = v.max_share_value, point_value = rate }))
    return nil, with_ids(e, ids)
  end
  local r
  local reference = "redeem-" .. tostring(req.order_id)
  r, err = b:redeem(ident, {
    points = req.points, otp = not skip and req.otp or nil, skip_otp = skip,
    reference = reference, bill_number = tostring(req.order_id),
    cart = type(cart) == "table" and cart or { total = cart, lines = {} },
  })
  if not r then
    if queueable(err) then
      -- The reply was lost (or the CRM said "retry"): the redemption may be booked. A hold of
      -- unknown outcome keeps the order's points from being lost: cancel or expiry resolves it
      -- under the same reference and reverses exactly what was booked; a retried redeem for the
      -- order replays that reference and never debits twice.
      local h, herr = self.holds:hold(ident, req.order_id, { unknown = true, points = req.points,
        reference = reference, skip_otp = skip, program_id = s_program_id(self) })
      err.outcome_unknown, err.order_id = true, req.order_id
      if h then
        err.hold_expires_at = h.expires_at
      else
        err.hold_error = herr
      end
      self:emit("warn", "redemption_outcome_unknown", { order_id = tostring(req.order_id), points = req.points,
                hold = h and "recorded" or "not recorded" })
    end
    if err.kind == "api" then
      -- Looser local rules than the CRM's: its refusal, said plainly.
      err.crm_refused = true
      err.message = "the CRM refuses the redemption: " .. tostring(err.message)
      err.crm_limit = crm_limit_refusal(self, err, req.points, "redeem")
    end
    return nil, with_ids(err, ids)
  end
  if r.rate then money.learn(self, r.rate, "points/redeem", c.tier) end
  r.value = r.value or money.money(r.points * rate)
  r.order_id, r.request_ids = req.order_id, ids
  r.point_value_mismatch = self.point_value_mismatch
  local hold, herr = self.holds:hold(ident, req.order_id, r)
  if hold then
    r.hold_expires_at = hold.expires_at
  else
    r.hold_error = herr
    self:emit("error", "redemption_hold_not_recorded", { order_id = tostring(req.order_id),
              message = tostring(herr and herr.message or herr) })
  end
  return r
end

--- Gives back the points redeemed for an order that will not be placed (payment failed, the
-- shopper left: the storefront's checkout-abandoned hook). Idempotent: a second cancel, or one
-- after the hold expired, changes nothing. Returns {cancelled = true, points_reversed, balance}
-- | {already = true, state} | {queued = true, outbox_id} (the CRM cannot be reached: the drainer
-- reverses it) | nil, err (refused with code "order_placed" when the CRM holds the order's bill:
-- return it instead; "no_hold" when no redemption is held for the order). `known` (optional): the
-- redeem result {redemption_id, points}, for a hold made by another process without a shared outbox;
-- {points} alone for such a redeem whose reply was lost (resolved by the order's reference).
function Program:cancel_redemption(user, order_id, known)
  if order_id == nil then error("loyalty.program: cancel_redemption needs an order id", 2) end
  if known ~= nil and type(known) ~= "table" then
    error("loyalty.program: cancel_redemption's third argument is the redeem result {redemption_id, points}", 2)
  end
  if bad_value(order_id) then
    return nil, errors.config("order id must be a non-empty single-line value of at most " .. MAX_ID .. " bytes",
                              "order_id")
  end
  order_id = id_text(order_id)
  local b, ids = self:traced()
  local ident, err = self:identify(user, true)
  if not ident then return nil, err end
  local h
  h, err = self.holds:find(order_id)
  if not h and not err and known and known.redemption_id and tonumber(known.points) then
    -- Held by another process without a shared outbox: the store kept redeem's result.
    h = { state = "held", payload = holds_mod.payload(ident, order_id, known) }
  elseif not h and not err and known and tonumber(known.points) then
    -- Another process's redeem whose reply was lost: the store knows the points it asked for, and
    -- the reference is the order's own, so the outcome is resolved here as well.
    h = { state = "held", payload = holds_mod.payload(ident, order_id, {
      unknown = true, points = tonumber(known.points), reference = "redeem-" .. order_id,
      skip_otp = self.settings.skip_redemption_otp, program_id = s_program_id(self) }) }
  end
  if not h then
    if err then return nil, with_ids(err, ids) end
    return refused("no redemption is held for order " .. tostring(order_id), { order_id = order_id, code = "no_hold" })
  end
  local owner = type(h.payload) == "table" and type(h.payload.customer) == "table" and h.payload.customer[ident.key]
  if owner ~= nil and tostring(owner) ~= ident.value then
    -- Another shopper's checkout: their held points are theirs to release.
    return refused("the redemption held for order " .. tostring(order_id) .. " is not this customer's",
                   { order_id = order_id, code = "not_this_customer" })
  end
  if h.state == "placed" then
    return refused("order " .. tostring(order_id) .. " was placed: return it with order_returned",
                   { order_id = order_id, code = "order_placed" })
  end
  -- A dead hold (its expiry failed for good: an outcome that could not be resolved) is tried again.
  if h.state ~= "held" and h.state ~= "dead" then
    return { already = true, state = h.state, order_id = order_id, request_ids = ids }
  end
  local r
  r, err = b:cancel_redemption(ident, h.payload)
  if not r then
    if self.outbox and queueable(err) then
      local q, qerr = self.holds:due_now(order_id)
      if not q then return nil, with_ids(qerr, ids) end
      q.crm_error, q.request_ids, q.order_id = err, ids, order_id
      return q
    end
    err.order_id = order_id
    return nil, with_ids(err, ids)
  end
  if r.placed then
    self.holds:settle(order_id, "placed")
    local _, e = refused("order " .. tostring(order_id) .. " was placed at the CRM: return it with order_returned",
                         { order_id = order_id, code = "order_placed" })
    return nil, with_ids(e, ids)
  end
  self.holds:settle(order_id, "cancelled")
  local c = b:lookup(ident)
  r.balance = c and c.points or r.balance
  r.cancelled, r.order_id, r.request_ids = true, order_id, ids
  return r
end

--- Without an outbox: gives back every held redemption past its hold time (with one, the
-- drainer does this). Returns {expired = n, failed = n}.
function Program:expire_holds(now)
  now = now or self.clock()
  local counts = { expired = 0, failed = 0 }
  if self.outbox then return counts end
  for order_id, h in pairs(self.holds.mem) do
    if h.state == "held" and h.expires_at <= now then
      local r = self.backend:cancel_redemption(h.ident, h.payload)
      if r then
        h.state = r.placed and "placed" or "expired"
        counts.expired = counts.expired + (r.placed and 0 or 1)
        self:emit("info", "redemption_hold_expired", { order_id = order_id, placed = r.placed == true })
      else
        counts.failed = counts.failed + 1
      end
    end
  end
  return counts
end

-- An email-only order: its customer has an email but not the store's identifier (a mobile, or
-- the external id when that is the identifier); with identifier = email there is none.
local function is_email_only(s, user)
  if blank(user.email) or s.identifier == "email" then return false end
  if s.identifier == "external_id" then return blank(user.external_id) end
  return blank(user.mobile)
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
  if bad then bad.order_id = order.id return nil, bad end
  order, bad = checked_order(order)
  if not order then return nil, bad end
  local email_only = is_email_only(s, user)
  if not s.earn_on_order or (email_only and not s.post_email_only_orders) then
    -- Not posted to earn, but placed: the points that paid for it are spent, never given back
    -- by the hold's expiry.
    local r = { skipped = true, reason = s.earn_on_order and "email-only orders are not posted"
                                         or "earning on orders is off" }
    local hold = self.holds:find(order.id)
    if hold and hold.state == "held" then
      local ok, herr = self.holds:settle(order.id, "placed")
      if not ok then r.hold_error = herr end
    end
    return r
  end
  local ident, err = self:identify(user, s.post_email_only_orders)
  if not ident then return nil, err end
  local rs
  rs, err = self:ruleset()
  if not rs and err then return nil, err end
  local till
  till, err = self:till_for(order)
  if not till then return nil, err end
  local ids = {}
  local b = self:traced(nil, ids)
  -- The redemption held for this order is tagged to its bill (and settled as placed below).
  local hold = self.holds:find(order.id)
  local released
  if hold and hold.state == "held" and hold.payload and hold.payload.unknown and order.redemption == nil
    and b.resolve_redemption then
    -- The redeem's reply was lost: what it booked (replayed by its reference) is tagged to the bill.
    local res = b:resolve_redemption(hold.payload)
    if res and not res.none then
      hold = { state = "held", payload = { redemption_id = res.redemption_id, points = res.points, value = res.value } }
    end
  end
  if hold and hold.state == "held" and order.redemption == nil and hold.payload.redemption_id then
    local o = {}
    for k, v in pairs(order) do o[k] = v end
    o.redemption = { id = hold.payload.redemption_id, points = hold.payload.points, value = hold.payload.value }
    order = o
  elseif hold and (hold.state == "expired" or hold.state == "cancelled") then
    -- The points came back before the order did: they pay nothing now. The order is posted (never
    -- lost) without the redemption, and the store is told loudly to collect that money.
    released = hold.state
    if order.redemption ~= nil then
      local o = {}
      for k, v in pairs(order) do o[k] = v end
      o.redemption = nil
      order = o
    end
    self:emit("warn", "redemption_released_before_order", { order_id = tostring(order.id), state = released,
              points = hold.payload and hold.payload.points, value = hold.payload and hold.payload.value })
  end
  local opts = { custom_fields = {}, till = { client = tracer(till.client or self.client, ids),
                                             attribution = till.attribution }, released = released }
  local estimate, earned
  if rs then
    opts.attributes_of = function(line) return rs:line_attributes(line) end
    opts.custom_fields.rules_hash = rs.hash
    earned = rs:earn(rules_customer { tier = user.tier, points = 0 }, cart_of(order))
    estimate = earned and earned.points
  end
  -- The balance before, so that points earned can be read off the CRM's own after-state balance
  -- (the documented transaction/add reply has no points side effect).
  local before
  if not (self.outbox and s.outbox.always) then
    local c, lerr = b:lookup(ident)
    if c then before = c.points elseif lerr and lerr.not_found then before = 0 end
  end
  local r
  if self.outbox then
    local rec
    r, err, rec = self:recorded(till.client or self.client, function(bk, proxy)
      opts.till = { client = proxy, attribution = till.attribution }
      return bk:post_order(ident, profile_of(self, user, ident), order, opts)
    end, nil, ids)
    if not r and queueable(err) then
      local code = s.use_order_store_till and order.store_code or nil
      local crm_err = not err.captured and err or nil
      r, err = self:enqueue("transaction_add", ident, rec,
                            { till = code and tostring(code), dedupe_key = "bill:" .. tostring(order.id) })
      if r then r.crm_error = crm_err end
    end
  else
    r, err = b:post_order(ident, profile_of(self, user, ident), order, opts)
  end
  if not r then
    err.order_id = order.id
    return nil, with_ids(err, ids)
  end
  _M.points_earned(r, before)
  if hold and hold.state == "held" then
    local ok, herr = self.holds:settle(order.id, "placed")
    if not ok then r.hold_error = herr end
  end
  r.estimate, r.rules_hash, r.request_ids = estimate, rs and rs.hash, ids
  if released then
    r.redemption_released = released
    r.redemption_unpaid_value = hold.payload and hold.payload.value
  end
  r.point_value = r.point_value or money.cached(self, user.tier) -- the CRM's rate known at the time, if any
  if self.order_log then -- every posted order, for rules replay and drift
    self.order_log:order_posted { order = order, ident = ident, tier = user.tier, rules = rs, estimate = earned,
                                  result = r, provider = s.provider }
  end
  return r
end

--- Fills r.points_earned from what the CRM said: a points side effect when the reply has one,
-- else the change of the customer's balance (before -> the reply's after-state balance); when
-- neither is known, nil with r.points_earned_unknown saying why (never a made-up 0).
function _M.points_earned(r, before)
  if r.points_earned ~= nil then
    r.points_earned_source = "side_effect"
  elseif r.queued then
    r.points_earned_unknown = "the order is queued for the CRM; its points are known once it is posted"
  elseif r.duplicate then
    r.points_earned_unknown = "the CRM already had this bill (a replay): its points were earned then"
  elseif r.balance and before and r.balance < before then
    -- A bill earns nothing negative: another write for the customer came between the two reads.
    r.points_earned_unknown = "the balance fell from " .. before .. " to " .. r.balance ..
      " over the order: other writes for the customer came in between"
  elseif r.balance and before then
    -- [INF] Other writes for the customer between the two reads would show here too.
    r.points_earned, r.points_earned_source = r.balance - before, "balance_change"
  elseif r.balance then
    r.points_earned_unknown = "the balance before the order could not be read"
  else
    r.points_earned_unknown = "the CRM's reply names neither the points earned nor the balance"
  end
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

-- Returns of this bill still waiting in the outbox (their transaction/add payloads): the ledger
-- counts them as made.
function Program:queued_returns(order_id)
  if not (self.outbox and self.outbox.list) then return {} end
  local pending = self.outbox:list("pending") or {}
  local out = {}
  for _, e in ipairs(pending) do
    local p = e.payload
    if e.kind == "transaction_return" and type(p) == "table" and tostring(p.number) == tostring(order_id) then
      out[#out + 1] = p
    end
  end
  return out
end

--- A return: `ret` nil = the whole order; {lines = {{sku | serial, qty, amount?}...}} = those
-- lines; {amount = n}. The order's returns ledger (the CRM's bill and returns, plus queued ones)
-- is read first: more than what remains is refused before any write (err.code over_return,
-- already_returned, no_such_line, mixed_return); a whole-order return after partial ones posts what
-- remains. Earned points come back as the CRM computes them; the redemption (order.redemption, or
-- the one held for the order) is given back in proportion to the money returned, all of it once
-- everything is returned. `balance` is the CRM's after both.
function Program:order_returned(user, order, ret)
  if type(order) ~= "table" or order.id == nil then error("loyalty.program: order with id expected", 2) end
  local bad = check_order_ids(order)
  if bad then bad.order_id = order.id return nil, bad end
  order, bad = checked_order(order)
  if not order then return nil, bad end
  if ret ~= nil then
    if type(ret) ~= "table" then error("loyalty.program: order_returned's third argument is {lines} or {amount}", 2) end
    local r2
    r2, bad = number_fields(ret, { "amount" }, "", order.id)
    if not r2 then return nil, bad end
    local lines
    lines, bad = checked_lines(ret.lines, "lines", order.id)
    if bad then return nil, bad end
    if r2 == ret then r2 = {} for k, v in pairs(ret) do r2[k] = v end end
    r2.lines = lines
    ret = r2
  end
  local s = self.settings
  local email_only = is_email_only(s, user)
  -- Not posted to earn: the CRM has no bill of it, unless its redemption booked the order there.
  local unposted = not s.earn_on_order or (email_only and not s.post_email_only_orders)
  if unposted and not self.storefront.REDEMPTION_BOOKS_ORDER then
    return self:return_unposted(order, ret)
  end
  local ident, err = self:identify(user, self.settings.post_email_only_orders)
  if not ident then return nil, err end
  local kind = "FULL"
  if ret and ret.lines then kind = "LINE_ITEM" elseif ret and ret.amount then kind = "AMOUNT" end
  local till
  till, err = self:till_for(order)
  if not till then return nil, err end
  local b, ids = self:traced()
  local number = tostring(order.id)
  -- The ledger: a failed read is no reason to lose a return when an outbox can keep it (the
  -- CRM then judges it); without one the return waits for the CRM.
  local L
  local behind_order -- the order itself still waits in the outbox: its return queues behind it
  if b.bill_record then
    local bill, returns = b:bill_record(ident, number)
    if bill then
      L = ledger.build(bill, returns, self:queued_returns(number))
    elseif not (returns and returns.no_bill) and not (self.outbox and queueable(returns)) then
      returns.order_id = order.id
      return nil, with_ids(returns, ids)
    end
    if not bill and self.outbox and self.outbox.find then
      local e = self.outbox:find("bill:" .. number)
      if e and e.state == "pending" and type(e.payload) == "table" then
        -- The ledger of a queued order is its queued bill (the CRM has no returns of it yet).
        behind_order = true
        L = ledger.build(e.payload, {}, self:queued_returns(number))
      end
    end
  end
  local plan
  if L then
    plan, err = ledger.plan(L, kind, ret or {})
    if not plan then
      if kind == "FULL" and err.code == "already_returned" then
        -- A retried whole-order return: nothing left, nothing changes.
        local c = b:lookup(ident)
        return { already = true, kind = "FULL", points_deducted = 0, points_reversed = 0,
                 balance = c and c.points, request_ids = ids, order_id = order.id }
      end
      err.order_id = order.id
      return nil, with_ids(err, ids)
    end
  else
    local amount = ret and ret.amount
    if kind == "LINE_ITEM" then
      amount = 0
      for _, l in ipairs(ret.lines) do amount = amount + (l.amount or (l.price or 0) * (l.qty or 1)) end
    end
    plan = { kind = kind, lines = ret and ret.lines, amount = amount, last = kind == "FULL" }
  end
  local red = order.redemption
  if not (type(red) == "table" and red.id) then
    -- The redemption held for this order and settled by order_placed (never a cancelled or
    -- expired one: those points are back already).
    local h = self.holds:find(order.id)
    red = h and h.state == "placed" and h.payload and { id = h.payload.redemption_id, points = h.payload.points }
      or nil
    if red and not red.id and h.payload.unknown and b.resolve_redemption then
      -- Placed on a redeem whose reply was lost: what it booked, replayed by its reference.
      local res = b:resolve_redemption(h.payload)
      red = res and not res.none and { id = res.redemption_id, points = res.points } or nil
    end
  end
  local reverse_points = red and red.id and ledger.reversal_points(L, plan, tonumber(red.points)) or 0
  local ref = return_ref(order, kind)
  if self.outbox then
    local r
    r, err = self:return_via_outbox(ident, order, plan, till, reverse_points > 0 and red, ref, reverse_points, ids,
                                    behind_order)
    if not r then return nil, with_ids(err, ids) end
    return self:return_checked(r, L, kind, plan.kind, ids)
  end
  local r
  r, err = b:post_return(ident, order, { kind = plan.kind, lines = plan.lines, amount = plan.amount,
                                         till = { client = tracer(till.client or self.client, ids),
                                                  attribution = till.attribution }, ref = ref })
  if not r then
    err.order_id = order.id
    return nil, with_ids(err, ids)
  end
  if reverse_points > 0 and r.points_reversed == nil then -- nil: the return itself did not refund the spend
    local rev
    rev, err = b:reverse_redemption(ident, red.id, reverse_points)
    if not rev then
      err.order_id = order.id
      err.return_posted = true
      return nil, with_ids(err, ids)
    end
    r.points_reversed = rev.points_reversed
    -- The return's reply gave the balance before the reversal.
    if r.balance then r.balance = r.balance + (rev.points_reversed or 0) end
  end
  return self:return_checked(r, L, kind, plan.kind, ids)
end

-- A return of an order that was placed but never posted to earn (earning off, an email-only
-- order not posted): the CRM has no bill, so nothing is posted; the redemption that paid for it
-- is given back, whole, once (a retry finds nothing left: the storefront's already_reversed).
function Program:return_unposted(order, ret)
  local why = self.settings.earn_on_order and "email-only orders are not posted" or "earning on orders is off"
  local h, herr = self.holds:find(order.id)
  if herr then return nil, herr end
  local p = h and h.state == "placed" and type(h.payload) == "table" and h.payload
  if not (p and p.redemption_id and type(p.customer) == "table" and next(p.customer)) then
    return { skipped = true, reason = why .. ": the CRM has no bill of this order to return", order_id = order.id,
             points_deducted = 0, points_reversed = 0 }
  end
  if ret ~= nil then
    return refused("order " .. tostring(order.id) .. " was not posted to the CRM (" .. why .. "): only the whole " ..
                   "order can be returned, which gives back its redemption", { code = "partial_unposted",
                   order_id = order.id })
  end
  local key, value = next(p.customer)
  local ident = { key = key, value = tostring(value) }
  local b, ids = self:traced()
  local rev, err = b:reverse_redemption(ident, p.redemption_id, tonumber(p.points))
  if not rev then
    if self.storefront.already_reversed and self.storefront.already_reversed(err) then
      local c = b:lookup(ident)
      return { already = true, kind = "FULL", points_deducted = 0, points_reversed = 0, balance = c and c.points,
               request_ids = ids, order_id = order.id }
    end
    err.order_id = order.id
    return nil, with_ids(err, ids)
  end
  local c = b:lookup(ident)
  return { kind = "FULL", requested_kind = "FULL", unposted = why, points_deducted = 0,
           points_reversed = rev.points_reversed, balance = c and c.points, request_ids = ids, order_id = order.id }
end

-- The result of a return, with what it posted and a loud warning when the CRM took back more
-- points than the order still had from what it earned.
function Program:return_checked(r, L, kind, posted_kind, ids)
  r.requested_kind, r.kind = kind, posted_kind
  r.request_ids = ids
  r.points_reversed = r.points_reversed or 0
  if L and L.points_awarded and type(r.points_deducted) == "number" then
    local left = L.points_awarded - L.points_returned
    if r.points_deducted > left then
      self:emit("warn", "return_points_exceed_earned", { points_deducted = r.points_deducted, earned_left = left })
      r.points_exceed_earned = true
    end
  end
  return r
end

-- order_returned with an outbox: a return that cannot be posted now is queued, and so is its
-- redemption reversal, behind it in the customer's line.
-- The entry's dedupe key is the return's reference (loyalty_return_ref, also in its payload).
function Program:return_via_outbox(ident, order, plan, till, red, ref, reverse_points, ids, behind_order)
  local s = self.settings
  local code = s.use_order_store_till and order.store_code or nil
  local r, err, rec = self:recorded(till.client or self.client, function(b, proxy)
    return b:post_return(ident, order, { kind = plan.kind, lines = plan.lines, amount = plan.amount, ref = ref,
                                         till = { client = proxy, attribution = till.attribution } })
  end, behind_order or nil, ids)
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
  r.kind = plan.kind
  if not red then return r end
  -- With the return queued, the reversal is only captured: it must not overtake its return.
  local rev, rrec
  rev, err, rrec = self:recorded(self.client,
                                 function(b) return b:reverse_redemption(ident, red.id, reverse_points) end,
                                 queued, ids)
  if not rev and queueable(err) then
    local key = plan.last and ("reverse:" .. tostring(red.id)) or ("reverse:" .. ref)
    rev, err = self:enqueue("points_reverse", ident, rrec, { dedupe_key = key })
    if rev then r.reversal_queued, r.reversal_outbox_id = true, rev.outbox_id end
  elseif rev then
    r.points_reversed = rev.points_reversed
    if r.balance then r.balance = r.balance + (rev.points_reversed or 0) end
  end
  if not rev then
    err.order_id = order.id
    return nil, err
  end
  return r
end

return _M

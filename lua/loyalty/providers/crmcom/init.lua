-- CRM.COM Rewards, legacy Web API (V4 platform, `{server}/crmapi/rest/v2`): login, the token as a
-- parameter, the {status, data} envelope, the POS flow and products/synchronise in batches.
-- Facts: shared/reference/crmcom.md; every inference: loyalty.providers.crmcom.inferred.
local core = require "loyalty.core"
local errors = require "loyalty.errors"
local util = require "loyalty.util"
local inferred = require "loyalty.providers.crmcom.inferred"
local shape = require "loyalty.shape"

local _M = { name = "crmcom", title = "CRM.COM", inferred = inferred,
             storefront = "loyalty.providers.crmcom.storefront", replay = "loyalty.providers.crmcom.replay" }

-- [INF] CRM.COM documents no request-id header: the generic one, when a proxy adds it.
_M.REQUEST_ID_HEADERS = { "x-request-id" }

-- The {status, data} envelope of a refusal: a code other than OK ([INF] NOT_FOUND: no error
-- catalogue is documented, see inferred.NOT_FOUND_CODES).
_M.error_sample = {
  reply = { status = 200, body = { status = { code = "NOT_FOUND", message = "Rewards participant not found",
                                              description = "No rewards participant matches the identifier" } } },
  spec = {}, code = "NOT_FOUND",
}

-- Client options of its own (loyalty.schema form): the login and the release the account speaks.
_M.config = {
  organisation = { type = "string", doc = "the organisation a username/password logs in to" },
  unit = { type = "string", doc = "the business unit to log in to" },
  api_key = { type = "string", doc = "a Web API key instead of username/password" },
  release = { type = "string", doc = "the CRM.COM release the account runs, such as R16 or R17.0.0" },
  sync_definition = { type = "table", doc = "products/synchronise definition {id | name | alternative_code}" },
}

-- `loyalty call` options.
_M.cli = {
  credentials = "LOYALTY_USERNAME / LOYALTY_PASSWORD with --organisation, or LOYALTY_API_KEY",
  options = {
    { flag = "--organisation", key = "organisation", env = "LOYALTY_ORGANISATION",
      help = "CRM.COM: the organisation a username/password logs in to (default $LOYALTY_ORGANISATION)." },
    { flag = "--unit", key = "unit", help = "CRM.COM: the business unit to log in to (optional)." },
  },
  env = { api_key = "LOYALTY_API_KEY" },
  how = { organisation = "pass --organisation ORG (or set LOYALTY_ORGANISATION)" },
}

--- CRM.COM runs per customer server: there is no public host to derive from an environment.
function _M.base_url()
  return nil, errors.config("CRM.COM has no public hosts: set base_url to {server}/crmapi/rest/v2", "base_url")
end

------------------------------------------------------------------------------------------
-- Release (API level): the flow differs by the CRM.COM release the account runs
-- (CRM-WIKI, corrections.md #1, #2, #7): GET rewards_participants/show on R4, POST from R5;
-- accounts_receivable_identifier mandatory on purchases and spend requests from R17
-- (rewards_participant_identifier deprecated), synchronisation_definition_identifier on
-- products/synchronise in the later revisions (taken as R17+, [INF] in inferred.lua).

--- opts (client options) -> profile {release = major number, name, sync_definition} or nil, err.
function _M.profile(opts)
  local name = opts.release or inferred.DEFAULT_RELEASE
  local major = type(name) == "string" and tonumber(name:match("^[Rr]?(%d+)[%.%d]*$"))
  if not major or major < 4 or major > 99 then
    return nil, errors.config("release must name a CRM.COM release such as \"R16\" or \"R17.0.0\" (R4 or later)",
                              "release")
  end
  local def = opts.sync_definition
  if def ~= nil then
    local n = 0
    for k, v in pairs(def) do
      if (k ~= "id" and k ~= "name" and k ~= "alternative_code") or type(v) ~= "string" or v == "" then
        return nil, errors.config("sync_definition takes one of id, name or alternative_code (a string)",
                                  "sync_definition")
      end
      n = n + 1
    end
    if n ~= 1 then
      return nil, errors.config("sync_definition takes exactly one of id, name or alternative_code", "sync_definition")
    end
  end
  return { release = major, name = "R" .. major, sync_definition = def }
end

local DEFAULT_PROFILE = assert(_M.profile {})
_M.DEFAULT_PROFILE = DEFAULT_PROFILE

------------------------------------------------------------------------------------------
-- Auth: POST authentication/token {username, password, organisation, unit?} or
-- POST authentication/web_api_key/token with the key as Basic username (crmcom.md §1).

--- opts (client options) -> { spec, key, secrets } or nil, config err.
function _M.login(opts)
  if opts.client_key or opts.client_secret or opts.token_header then
    local key = opts.client_key and "client_key" or (opts.client_secret and "client_secret" or "token_header")
    return nil, errors.config("CRM.COM logs in with username/password/organisation or api_key, not OAuth keys", key)
  end
  if opts.api_key then
    if opts.username or opts.password then
      return nil, errors.config("give either api_key or username/password, not both", "api_key")
    end
    local basic = core.base64(opts.api_key .. (inferred.API_KEY_WITH_COLON and ":" or ""))
    return {
      spec = { method = "POST", path = "/authentication/web_api_key/token", json = { unit = opts.unit },
               headers = { Authorization = "Basic " .. basic }, idempotent = true, login = true,
               retry_safe = true },
      key = "crmcom|key|" .. core.md5_hex(opts.api_key) .. "|" .. (opts.unit or ""),
      secrets = { opts.api_key, basic },
    }
  end
  if not (opts.username and opts.password) then
    return nil, errors.config("CRM.COM needs username and password (or api_key)",
                              opts.username and "password" or "username")
  end
  if not opts.organisation then
    return nil, errors.config("CRM.COM username/password login needs the organisation", "organisation")
  end
  return {
    spec = { method = "POST", path = "/authentication/token", idempotent = true, login = true, retry_safe = true,
             json = { username = opts.username, password = opts.password, organisation = opts.organisation,
                      unit = opts.unit } },
    key = "crmcom|" .. opts.organisation .. "|" .. opts.username .. "|" .. (opts.unit or ""),
    secrets = { opts.password },
  }
end

function _M.token_from(result)
  local data = result.data
  if type(data) ~= "table" or type(data.token) ~= "string" or data.token == "" then
    return nil, errors.new { kind = "auth", status = result.status, request_id = result.request_id,
                             message = "CRM.COM login reply has no token" }
  end
  return data.token, inferred.TOKEN_TTL_SECONDS
end

local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

--- The token goes as the `token` parameter: query string on GET, top-level body field on POST.
function _M.apply_token(spec, token)
  local s = copy(spec)
  if spec.method == "GET" then
    s.query = copy(spec.query)
    s.query.token = token
  else
    s.json = copy(spec.json)
    s.json.token = token
  end
  return s
end

------------------------------------------------------------------------------------------
-- Reply interpretation: {"status": {"code", "message", "description"}, "data": ...}

local function http_error(reply)
  local s = reply.status
  local kind = (s == 401 or s == 403) and "auth" or (s == 429 and "rate_limited" or "http")
  return errors.new { kind = kind, status = s, message = "HTTP " .. s, request_id = reply.request_id,
                      retryable = inferred.RETRYABLE_HTTP[s] or false, retry_after = reply.retry_after,
                      token_rejected = (s == 401 and not reply.login) or nil }
end

local function text(v)
  if type(v) == "string" and v ~= "" then return v end
end

--- reply (from core.decode_reply) -> result {status, request_id, body, data, ...} or nil, err.
function _M.interpret(reply, spec)
  local body = reply.body
  local status = type(body) == "table" and type(body.status) == "table" and body.status
  if not status then
    if reply.status >= 300 then
      reply.login = spec.login
      return nil, http_error(reply)
    end
    return nil, errors.new { kind = "decode", status = reply.status, request_id = reply.request_id,
                             message = "reply has no CRM.COM {status, data} envelope", retryable = true }
  end
  local code = status.code
  if type(code) ~= "string" and type(code) ~= "number" then
    if reply.status >= 300 then return nil, http_error(reply) end
    return nil, shape.bad(reply, "status.code", "a string", code)
  end
  if code ~= "OK" then
    code = type(code) == "string" and code or tostring(code)
    -- The HTTP status decides where it means something (401 token or login refused, 403 no
    -- permission, 404 not found: the documented HTTP statuses of CRM.COM's API, crmcom.md §5.2);
    -- the codes in inferred.lua are only a fallback for servers that answer 200 ([INF], gap 2).
    local http = reply.status
    local kind, rejected = "api", nil
    if spec.login then
      if http == 401 or http == 403 or inferred.LOGIN_FAILED_CODES[code] or inferred.TOKEN_REJECTED_CODES[code] then
        kind = "auth"
      end
    elseif http == 401 or inferred.TOKEN_REJECTED_CODES[code] then
      kind, rejected = "auth", true
    elseif http == 403 then
      kind = "auth"
    end
    if http >= 500 or http == 429 then return nil, http_error(reply) end
    local not_found = (http == 404 or inferred.NOT_FOUND_CODES[code]) and kind == "api" or nil
    return nil, errors.new {
      kind = kind, status = http, code = code, request_id = reply.request_id, token_rejected = rejected,
      message = text(status.message) or text(status.description) or ("CRM.COM status " .. code),
      description = text(status.description), not_found = not_found,
    }
  end
  local data = body.data
  if type(data) ~= "table" then
    if not shape.absent(data) then return nil, shape.bad(reply, "data", "an object or array", data) end
    data = {}
  end
  return { status = reply.status, request_id = reply.request_id, body = body, data = data, warnings = {} }
end

------------------------------------------------------------------------------------------
-- Helpers

local function check_string(name, v, max)
  local t = type(v)
  if t == "number" then return tostring(v) end
  if t ~= "string" then error("loyalty: " .. name .. " must be a string or number", 4) end
  if not util.single_line(v, max or 256) then return nil end
  return v
end

local function fields_set(v)
  if v == nil then return nil end
  if type(v) == "string" then return v end
  if type(v) == "table" then return table.concat(v, ",") end
  error("loyalty: fields_set must be a string or a list of strings", 4)
end

local function num(v) return tonumber(v) or 0 end

-- Numeric fields of a reply's `d` into v[key] (type-checked; absent: 0 unless listed in `maybe`).
local function read_numbers(r, d, map, v, maybe)
  for key, field in pairs(map) do
    local n, err = shape.number(r, d[field], "data." .. field)
    if err then return nil, err end
    if n == nil and not (maybe and maybe[key]) then n = 0 end
    v[key] = n
  end
  return v
end

-- Text and id fields of `d` into v[key], type-checked.
local function read_fields(r, d, map, v, read)
  for key, field in pairs(map) do
    local x, err = read(r, d[field], "data." .. field)
    if err then return nil, err end
    v[key] = x
  end
  return v
end
local SCALE = 10 ^ inferred.MONEY_DECIMALS
local function money(x)
  local n = tonumber(x) or 0
  return math.floor(n * SCALE + 0.5) / SCALE
end
_M.money = money

-- The access token fields of a participant (crmcom.md §2.2): card, mobile and email are its
-- authentication codes ([INF] inferred.lua), or identifier + pass_code, or a one-time password.
local TOKEN_FIELDS = { "authentication_code", "card", "mobile", "email", "one_time_password", "identifier" }

local function one_field(found, key)
  if found then return nil, errors.config("give exactly one participant identifier", key) end
  return true
end

-- args, profile, use ("show" | "event") -> { rewards_participant_identifier = … } or
-- { accounts_receivable_identifier = … } (exactly one semi-optional field, crmcom.md §2.2), or nil, err.
-- Keys: id, number (the participant's), account (the accounts receivable number), external_id
-- (the participant number before R17, the account number from R17: [INF] inferred.lua), and the
-- access token fields. From R17 events name the accounts receivable [DOC CRM-WIKI pageId=514482].
local function participant_identifier(args, profile, use)
  if type(args) ~= "table" then error("loyalty: participant identifier table expected", 4) end
  profile = profile or DEFAULT_PROFILE
  local r17 = profile.release >= 17
  local rp, ar, last
  for _, key in ipairs { "id", "number", "account", "external_id" } do
    if args[key] ~= nil then
      local v = check_string(key, args[key])
      if not v then return nil, errors.config("invalid participant " .. key, key) end
      local ok, e = one_field(rp or ar, key)
      if not ok then return nil, e end
      last = key
      if key == "account" or (key == "external_id" and r17) then
        ar = { number = v }
      elseif key == "external_id" then
        rp = { [inferred.IDENTIFIER_FIELDS.external_id] = v }
      else
        rp = { [key] = v }
      end
    end
  end
  for _, key in ipairs(TOKEN_FIELDS) do
    if args[key] ~= nil then
      local v = check_string(key, args[key])
      if not v then return nil, errors.config("invalid participant " .. key, key) end
      local ok, e = one_field(rp or ar, key)
      if not ok then return nil, e end
      local ati
      if key == "one_time_password" then
        ati = { one_time_password = tonumber(v) or v }
      elseif key == "identifier" then
        local pass = check_string("pass_code", args.pass_code or "")
        if not pass then return nil, errors.config("identifier needs its pass_code", "pass_code") end
        ati = { identifier = v, pass_code = pass }
      else
        ati = { authentication_code = v }
      end
      last = key
      -- [DOC] show takes access_token_identifier in the participant identifier (R5+); purchases
      -- take it inside the accounts receivable identifier (R15+).
      if use == "show" then rp = { access_token_identifier = ati } else ar = { access_token_identifier = ati } end
    end
  end
  if not (rp or ar) then
    return nil, errors.config("a participant identifier (number, id, account, external_id, card, mobile, email, "
                              .. "authentication_code, identifier + pass_code or one_time_password) is required",
                              "identifier")
  end
  if use == "show" and ar then
    return nil, errors.config("rewards_participants/show names a participant (id, number or an access token), "
                              .. "not an accounts receivable", last)
  end
  if use == "show" and rp.access_token_identifier and profile.release < 5 then
    return nil, errors.config("rewards_participants/show by an access token needs R5 or later (POST show)", last)
  end
  if use == "event" and r17 and rp then
    -- [DOC] R17+: accounts_receivable_identifier mandatory, rewards_participant_identifier deprecated.
    return nil, errors.config("from CRM.COM R17 purchases and spend requests name the accounts receivable: "
                              .. "give account (or external_id) or an access token, not the participant " .. last,
                              last)
  end
  if rp then return { rewards_participant_identifier = rp } end
  return { accounts_receivable_identifier = ar }
end
_M.participant_identifier = participant_identifier

-- A purchase identifier from {id | number | reference}.
local function event_identifier(p)
  if type(p) ~= "table" then error("loyalty: purchase identifier table expected", 4) end
  for _, key in ipairs { "id", "number", "reference_number" } do
    if p[key] ~= nil then
      local v = check_string(key, p[key])
      if not v then return nil, errors.config("invalid purchase " .. key, key) end
      return { [key] = v }
    end
  end
  return nil, errors.config("a purchase id, number or reference_number is required", "purchase")
end

-- [DOC] CRM.COM dates are zone-less local dates ("2014-08-05T15:49:59", crmcom.md §2.5): the
-- server's local time. A number is an epoch time; a string is sent as given.
local function local_date(v)
  if v == nil then return os.date("%Y-%m-%dT%H:%M:%S") end
  if type(v) == "number" then return os.date("%Y-%m-%dT%H:%M:%S", math.floor(v)) end
  if type(v) ~= "string" then error("loyalty: performed_on must be a string or an epoch number", 4) end
  return v
end
_M.local_date = local_date

-- purchase {participant = {...}, lines = {{code, quantity, net, vat, total}}, reference, ...}
-- -> the body shared by purchases/preview and purchases/create (crmcom.md §4.2-4.3).
local function purchase_body(p, profile)
  if type(p) ~= "table" then error("loyalty: purchase table expected", 4) end
  local ident, err = participant_identifier(p.participant or {}, profile, "event")
  if not ident then return nil, err end
  local lines = {}
  for i, l in ipairs(p.lines or {}) do
    if type(l) ~= "table" then error("loyalty: purchase line " .. i .. " must be a table", 4) end
    local total = l.total_amount or l.total
    local vat = l.vat_amount or l.vat or 0
    local net = l.net_amount or l.net or (total and total - vat)
    if type(net) ~= "number" or type(total or net + vat) ~= "number" then
      return nil, errors.config("purchase line " .. i .. " needs a numeric total (or net and vat)", "lines")
    end
    local line = { quantity = l.quantity or l.qty or 1, net_amount = money(net), vat_amount = money(vat),
                   total_amount = money(total or net + vat) }
    local code = l.code or l.sku
    if code ~= nil then
      local c = check_string("product code", code)
      if not c then return nil, errors.config("invalid product code on line " .. i, "lines") end
      line.product_identifier = { code = c } -- without it CRM.COM books the Default Product
    end
    lines[i] = line
  end
  local body = {
    rewards_participant_identifier = ident.rewards_participant_identifier,
    accounts_receivable_identifier = ident.accounts_receivable_identifier,
    performed_on = local_date(p.performed_on), description = p.description,
    reference_number = p.reference, external_system = p.external_system,
    external_system_reference_number = p.external_reference or p.reference,
    products_set = #lines > 0 and lines or core.empty_array,
    performed_by_unit_identifier = p.unit and { id = p.unit } or nil,
    classification_identifier = p.classification and { name = p.classification } or nil,
  }
  return body
end

------------------------------------------------------------------------------------------
-- Typed views

local PREVIEW_NUMBERS = {
  award = "total_award_amount", instant_spend = "total_instant_spend_amount",
  automatic_spend = "total_automatic_spend_amount", eligible_spend = "total_additional_spend_amount",
  min_spend = "minimum_spend_amount_per_transaction", max_spend = "maximum_spend_amount_per_transaction",
  wallet_balance = "wallet_balance",
}
local MAYBE_MAX = { max_spend = true }

--- The figures of a preview reply (purchase_customer_event_preview_complete, §4.2), or nil, err
-- when a field has the wrong type (`r`: the result, for the error's request id).
local function preview_view(d, r)
  local v, err = read_numbers(r, d, PREVIEW_NUMBERS, {}, MAYBE_MAX)
  if not v then return nil, err end
  local allow
  allow, err = shape.boolean(r, d.allow_spending, "data.allow_spending")
  if err then return nil, err end
  v.allow_spending = allow ~= false
  v, err = read_fields(r, d, { reduction_method = "reduction_method", participant_name = "rewards_participant_name" },
                       v, shape.text)
  if not v then return nil, err end
  v.reduction_method = v.reduction_method or "FRONT_END_REDUCTION"
  v.participant_id, err = shape.scalar(r, d.rewards_participant_id, "data.rewards_participant_id")
  if err then return nil, err end
  local offer = v.eligible_spend
  if v.max_spend then offer = math.min(offer, v.max_spend) end
  offer = money(offer)
  v.offer = (v.allow_spending and offer > 0 and offer >= v.min_spend) and offer or 0
  return v
end
_M.preview_view = preview_view

local PURCHASE_NUMBERS = { total = "total_amount", net = "net_amount", vat = "vat_amount",
                           awarded = "total_awarded_amount", spent = "total_spend_amount",
                           requested_spend = "requested_spend_amount" }
local MAYBE_REQUESTED = { requested_spend = true }

--- The figures of a purchase customer event (§4.3), or nil, err (a field of the wrong type).
local function purchase_view(d, r)
  local v, err = read_numbers(r, d, PURCHASE_NUMBERS, {}, MAYBE_REQUESTED)
  if not v then return nil, err end
  v, err = read_fields(r, d, { id = "id", number = "number" }, v, shape.scalar)
  if not v then return nil, err end
  return read_fields(r, d, { state = "life_cycle_state", reference = "reference_number",
                             external_reference = "external_system_reference_number" }, v, shape.text)
end
_M.purchase_view = purchase_view

--- Amount to collect when closing the sale: purchase {total, spent} plus the actual amounts of
-- later spend requests ({actual} each, or numbers); reduction_method from the preview.
function _M.amount_to_collect(purchase, spends, reduction_method)
  local spent = num(purchase.spent)
  for _, s in ipairs(spends or {}) do spent = spent + num(type(s) == "table" and s.actual or s) end
  spent = money(spent)
  local total = money(purchase.total)
  local back_end = reduction_method == "BACK_END_REDUCTION"
  return { total = total, spent = spent, reduction_method = reduction_method or "FRONT_END_REDUCTION",
           due = back_end and total or money(math.max(total - spent, 0)),
           credited_later = back_end and spent or 0 }
end

local function pick_purchase(r)
  local v, err = purchase_view(r.data, r)
  if not v then return err end
  r.purchase = v
end

------------------------------------------------------------------------------------------
-- Operations: each returns a request spec; `pick` fills typed fields of the result.

local ops = {}
_M.ops = ops

local function pick_participant(r)
  local p, perr = shape.object(r, r.data, "data")
  if perr then return perr end
  r.participant = p or {}
end

--- rewards_participants/show: POST with a JSON body from R5 (the token in the body, never in a
-- URL) [DOC CRM-WIKI x/yHkH, pageId=491668]; GET with the flattened identifier
-- (`rewards_participant_identifier=number=29`) on R4 only. r.participant
function ops.participant_show(profile, args)
  profile = profile or DEFAULT_PROFILE
  local ident, err = participant_identifier(args, profile, "show")
  if not ident then return nil, err end
  local fs = fields_set(args.fields_set)
  local rp = ident.rewards_participant_identifier
  if profile.release >= 5 then
    return { method = "POST", path = "/rewards_participants/show", idempotent = true, pick = pick_participant,
             json = { rewards_participant_identifier = rp, fields_set = fs } }
  end
  local field, value = next(rp)
  return { method = "GET", path = "/rewards_participants/show", pick = pick_participant,
           query = { rewards_participant_identifier = field .. "=" .. value, fields_set = fs } }
end

--- customer_events/purchases/preview: r.preview {award, eligible_spend, min_spend, max_spend,
-- wallet_balance, reduction_method, allow_spending, offer, …}
function ops.purchase_preview(profile, purchase)
  local body, err = purchase_body(purchase, profile)
  if not body then return nil, err end
  return { method = "POST", path = "/customer_events/purchases/preview", json = body, idempotent = true,
           pick = function(r)
             local v, perr = preview_view(r.data, r)
             if not v then return perr end
             r.preview = v
           end }
end

--- customer_events/purchases/create: r.purchase {id, number, total, awarded, spent, …}. With a
-- reference (external_system_reference_number) a retry is safe: the CRM returns the first purchase.
function ops.purchase_create(profile, purchase)
  local body, err = purchase_body(purchase, profile)
  if not body then return nil, err end
  return { method = "POST", path = "/customer_events/purchases/create", json = body,
           idempotent = body.external_system_reference_number ~= nil,
           pick = pick_purchase }
end

--- customer_events/purchases/show (GET): r.purchase
function ops.purchase_show(_, args)
  local ident, err = event_identifier(args)
  if not ident then return nil, err end
  local field, value = next(ident)
  return { method = "GET", path = "/customer_events/purchases/show",
           query = { purchase_customer_event_identifier = field .. "=" .. value,
                     fields_set = fields_set(args.fields_set) },
           pick = pick_purchase }
end

--- customer_events/purchases/cancel: r.purchase (state CANCELLED)
function ops.purchase_cancel(_, args)
  local ident, err = event_identifier(args)
  if not ident then return nil, err end
  return { method = "POST", path = "/customer_events/purchases/cancel", idempotent = true,
           json = { purchase_customer_event_identifier = ident },
           pick = pick_purchase }
end

--- customer_events/purchases/list with pagination: args {participant…, number_of_results, offset,
-- fields_set}. r.purchases = {purchase_view…}, r.raw_purchases
function ops.purchases_list(profile, args)
  if type(args) ~= "table" then error("loyalty: arguments table expected", 2) end
  local body = { number_of_results = args.number_of_results, offset = args.offset,
                 fields_set = fields_set(args.fields_set) }
  if args.participant then
    local ident, err = participant_identifier(args.participant, profile, "event")
    if not ident then return nil, err end
    body.rewards_participant_identifier = ident.rewards_participant_identifier
    body.accounts_receivable_identifier = ident.accounts_receivable_identifier
  end
  return { method = "POST", path = "/customer_events/purchases/list", json = body, idempotent = true,
           pick = function(r)
             local list, perr
             if r.data[1] ~= nil then
               list, perr = shape.objects(r, r.data, "data")
             else
               list, perr = shape.objects(r, r.data.purchases_set, "data.purchases_set")
             end
             if perr then return perr end
             list = list or {}
             r.raw_purchases, r.purchases = list, {}
             for i, p in ipairs(list) do
               local v, verr = purchase_view(p, r)
               if not v then return verr end
               r.purchases[i] = v
             end
           end }
end

--- customer_events/spend_requests/create: args {participant = {...}, purchase = {id|number},
-- amount (nil: the purchase total), reference, unit}. r.spend {id, number, requested, actual}
function ops.spend_request_create(profile, args)
  if type(args) ~= "table" then error("loyalty: spend request table expected", 2) end
  local ident, err = participant_identifier(args.participant or {}, profile, "event")
  if not ident then return nil, err end
  local event
  event, err = event_identifier(args.purchase or {})
  if not event then return nil, err end
  if args.amount ~= nil and (type(args.amount) ~= "number" or args.amount <= 0) then
    return nil, errors.config("spend amount must be a positive number", "amount")
  end
  local body = {
    rewards_participant_identifier = ident.rewards_participant_identifier,
    accounts_receivable_identifier = ident.accounts_receivable_identifier,
    purchase_customer_request_identifier = event, -- [DOC] spelled so; the sandbox also takes …event…
    spend_amount = args.amount and money(args.amount) or nil, performed_on = local_date(args.performed_on),
    performed_by_unit_identifier = args.unit and { id = args.unit } or nil,
    external_system_reference_number = args.reference, description = args.description,
  }
  return { method = "POST", path = "/customer_events/spend_requests/create", json = body,
           idempotent = args.reference ~= nil,
           pick = function(r)
             local d = r.data
             local tx, perr = shape.object(r, d.spend_reward_transaction, "data.spend_reward_transaction")
             if perr then return perr end
             tx = tx or {}
             local actual
             if tx.amount ~= nil then
               actual, perr = shape.number(r, tx.amount, "data.spend_reward_transaction.amount")
             else
               actual, perr = shape.number(r, d.spend_amount, "data.spend_amount")
             end
             if perr then return perr end
             local v
             v, perr = read_fields(r, d, { id = "id", number = "number" }, {}, shape.scalar)
             if not v then return perr end
             v, perr = read_fields(r, d, { state = "life_cycle_state", reduction_method = "reduction_method" }, v,
                                   shape.text)
             if not v then return perr end
             v.requested, v.actual = args.amount, actual or 0
             r.spend = v
           end }
end

------------------------------------------------------------------------------------------
-- products/synchronise in parallel batches (crmcom.md §4.6: at most 1,000 products per call).

local batch_ops = {}
_M.batch_ops = batch_ops

--- products: array of product objects ({code, description, …}); opts {batch_size (<= 1000),
-- max_in_flight, definition = {name|id|alternative_code}, fields_set}.
-- Returns a plan for client:request_many; client:products_synchronise(...) returns
-- { calls, processed = {{request_code, id, code, message, batch}}, unprocessed = {{request_code,
-- error_code, error_description, batch}}, failed_batches = {{batch, first, last, count, err}} }.
function batch_ops.products_synchronise(profile, products, opts)
  if type(products) ~= "table" then error("loyalty: products array expected", 2) end
  profile = profile or DEFAULT_PROFILE
  opts = opts or {}
  local size = opts.batch_size or inferred.SYNC_BATCH_SIZE
  if type(size) ~= "number" or size < 1 or size > inferred.SYNC_BATCH_SIZE or size ~= math.floor(size) then
    return nil, errors.config("batch_size must be a whole number from 1 to " .. inferred.SYNC_BATCH_SIZE, "batch_size")
  end
  local max_in_flight = opts.max_in_flight or inferred.SYNC_MAX_IN_FLIGHT
  if type(max_in_flight) ~= "number" or max_in_flight < 1 or max_in_flight > 1024 then
    return nil, errors.config("max_in_flight must be from 1 to 1024", "max_in_flight")
  end
  local d = opts.definition or profile.sync_definition
  local definition = d and { name = d.name, id = d.id, alternative_code = d.alternative_code }
  if not (definition and next(definition)) and profile.release >= 17 then
    -- [DOC CRM-WIKI pageId=490685 v26] mandatory in the later revisions ([INF] taken as R17+).
    return nil, errors.config("products/synchronise needs a synchronisation definition on " .. profile.name
                              .. ": give definition = {name|id|alternative_code} or the sync_definition option",
                              "definition")
  end
  local specs, ranges = {}, {}
  for first = 1, #products, size do
    local last = math.min(first + size - 1, #products)
    local set = {}
    for i = first, last do set[#set + 1] = products[i] end
    specs[#specs + 1] = {
      method = "POST", path = "/products/synchronise", idempotent = true, -- a replay re-syncs the same data
      json = { products_set = set, synchronisation_definition_identifier = definition,
               fields_set = fields_set(opts.fields_set) },
    }
    ranges[#ranges + 1] = { first = first, last = last }
  end
  local function combine(results)
    local out = { calls = #specs, processed = {}, unprocessed = {}, failed_batches = {} }
    for b, r in ipairs(results) do
      local range = ranges[b]
      if r.err then
        out.failed_batches[#out.failed_batches + 1] = { batch = b, first = range.first, last = range.last,
                                                        count = range.last - range.first + 1, err = r.err }
      else
        local processed, perr = shape.objects(r, r.data.processed_products_set, "data.processed_products_set")
        local unprocessed
        if not perr then
          unprocessed, perr = shape.objects(r, r.data.unprocessed_products_set, "data.unprocessed_products_set")
        end
        if perr then -- the batch's outcome cannot be read: reported with the failed batches
          out.failed_batches[#out.failed_batches + 1] = { batch = b, first = range.first, last = range.last,
                                                          count = range.last - range.first + 1, err = perr }
          processed, unprocessed = {}, {}
        end
        for _, p in ipairs(processed or {}) do
          out.processed[#out.processed + 1] = { request_code = p.request_code, id = p.id, code = p.code,
                                                message = p.message, batch = b }
        end
        for _, p in ipairs(unprocessed or {}) do
          out.unprocessed[#out.unprocessed + 1] = { request_code = p.request_code, error_code = p.error_code,
                                                    error_description = p.error_description, batch = b }
        end
      end
    end
    out.partial = #out.unprocessed > 0 or #out.failed_batches > 0
    return out
  end
  return { specs = specs, max_in_flight = max_in_flight, combine = combine }
end

return _M

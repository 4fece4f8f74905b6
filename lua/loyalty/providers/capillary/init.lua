-- Capillary: hosts, endpoint -> request spec, reply -> result or error.
-- Only this module knows Capillary's paths and envelopes (facts: shared/reference/capillary.md).
local core = require "loyalty.core"
local errors = require "loyalty.errors"
local util = require "loyalty.util"
local normalize = require "loyalty.providers.capillary.normalize"
local inferred = require "loyalty.providers.capillary.inferred"
local shape = require "loyalty.shape"

local type = type -- an upvalue: the per-call checks skip a global lookup on Lua 5.4

local _M = { name = "capillary", title = "Capillary", inferred = inferred,
             storefront = "loyalty.providers.capillary.storefront", replay = "loyalty.providers.capillary.replay" }

-- Reply headers carrying the request id, first found wins (capillary.md: tracking headers).
_M.REQUEST_ID_HEADERS = { "x-cap-requestid", "x-cap-request-id", "x-request-id" }

-- A documented v2 error reply (capillary.md §5): an `errors` list, the first one naming the code.
_M.error_sample = {
  reply = { status = 400, body = { errors = { { code = 8015, message = "Customer not found for given identifiers" } },
                                   warnings = {} } },
  spec = { version = "v2" }, code = 8015,
}

-- Client options of its own: none (environment/cluster, OAuth keys and attribution are the
-- client's generic options, read through base_url, token_request and attribution_headers).
_M.config = {}

-- `loyalty call` options: where the host comes from, and how to read a raw path's reply.
_M.cli = {
  credentials = "LOYALTY_USERNAME / LOYALTY_PASSWORD (a till), or LOYALTY_CLIENT_KEY / LOYALTY_CLIENT_SECRET",
  options = {
    { flag = "--environment", key = "environment", instead_of_base_url = true,
      help = "Capillary instead of --base-url: production, dev or stage (with --cluster)." },
    { flag = "--cluster", key = "cluster", instead_of_base_url = true,
      help = "Capillary cluster: india, apac2, sea, eu, us, ushc, china." },
    { flag = "--v2", target = "spec", flag_only = true,
      help = "Capillary, with METHOD PATH: read the reply as a v2 envelope (default: v1.1 for /v1.1/ paths)." },
  },
  env = { client_key = "LOYALTY_CLIENT_KEY", client_secret = "LOYALTY_CLIENT_SECRET" },
  how = {
    cluster = "pass --environment and --cluster, or --base-url",
    environment = "pass --environment and --cluster, or --base-url",
  },
}

--- A raw METHOD PATH call's spec: the envelope to read it with.
function _M.cli.raw_spec(spec, args)
  spec.version = (not args.v2 and spec.path:find("^/v1%.1/")) and "v1.1" or "v2"
  return spec
end

-- Production clusters ("hubs"). The reference lists conflicting host sets (§1.1); these are
-- the v2-doc hosts. [INF] `sea`/`ushc` come from the newer overview. Always overridable by base_url.
_M.CLUSTERS = {
  india = "https://apac.api.capillarytech.com",
  apac = "https://apac.api.capillarytech.com",
  apac2 = "https://apac2.api.capillarytech.com",
  sea = "https://sea.api.capillarytech.com",
  eu = "https://eu.api.capillarytech.com",
  us = "https://us.api.capillarytech.com",
  ushc = "https://ushc.api.capillarytech.com",
  china = "https://api.capillarytech.cn.com",
}
-- [INF] Non-production environments: the docs only show these hosts in samples (§1.1).
_M.ENVIRONMENTS = {
  dev = "https://nightly.api.capillarytech.com",
  stage = "https://crm-nightly-new.cc.capillarytech.com",
}

--- Base URL for {environment, cluster}; nil, err when the pair names no host.
function _M.base_url(environment, cluster)
  environment = environment or "production"
  if environment == "production" then
    local url = _M.CLUSTERS[cluster or ""]
    if not url then
      return nil, errors.config("unknown cluster '" .. tostring(cluster) .. "' for production", "cluster")
    end
    return url
  end
  local url = _M.ENVIRONMENTS[environment]
  if not url then
    return nil, errors.config("unknown environment '" .. tostring(environment) .. "'", "environment")
  end
  return url
end

-- [DOC seed 002, S-V11 index] Content-Type: application/json is listed as required on every call,
-- GETs included: the client sends it on every Capillary request.
_M.CONTENT_TYPE_ALWAYS = true

_M.TOKEN_HEADER = "X-CAP-API-OAUTH-TOKEN"

function _M.attribution_headers(a)
  if not a then return nil end
  local h = {}
  if a.entity_type then h["X-CAP-API-ATTRIBUTION-ENTITY-TYPE"] = a.entity_type end
  if a.entity_code then h["X-CAP-API-ATTRIBUTION-ENTITY-CODE"] = a.entity_code end
  if a.till_code then h["X-CAP-API-ATTRIBUTION-TILL-CODE"] = a.till_code end
  return h
end

--- A till's username/password: Basic with the md5 of the password (core.basic_auth), and the
-- secrets derived from it (scrubbed like the password).
function _M.password_auth(username, password)
  local value = core.basic_auth(username, password)
  return { header = "Authorization", value = value, secrets = { password, value:sub(7), core.md5_hex(password) } }
end

--- The OAuth token request and the reading of its reply.
function _M.token_request(key, secret)
  return { method = "POST", path = "/v3/oauth/token/generate", json = { key = key, secret = secret },
           version = "v3", retry_safe = true } -- a new token replaces none: safe to send again
end

function _M.token_from(result)
  local data = type(result.body) == "table" and result.body.data
  if type(data) ~= "table" or type(data.accessToken) ~= "string" or data.accessToken == "" then
    return nil, errors.new { kind = "auth", status = result.status, request_id = result.request_id,
                             message = "Failed to generate OAuth token" }
  end
  local ttl = data.ttlSeconds
  if ttl == nil or type(ttl) == "userdata" then return data.accessToken, 300 end
  ttl = tonumber(ttl)
  if not ttl or ttl ~= ttl or ttl < 0 or ttl == math.huge then
    return nil, errors.bad_field(result, "data.ttlSeconds", "a number of seconds >= 0", data.ttlSeconds)
  end
  return data.accessToken, ttl
end

------------------------------------------------------------------------------------------
-- Reply interpretation

-- Provider codes that mean "try again later" (§5, §6).
local RETRYABLE_CODES = {
  [461] = true, [517] = true, [520] = true, [521] = true, [815] = true, [886] = true,
  [887] = true, [894] = true, [898] = true, [4001] = true,
}
_M.RETRYABLE_CODES = RETRYABLE_CODES

-- 889 "Points processing failed … Reason: Failed to Connect to Service / Invalid Customer
-- identifiers passed" [DOC S-DOCS]: one code for a transient and a permanent cause. Only the
-- message tells them apart, so only a message naming the connection failure is retried.
local function mentions(m, words)
  for _, w in ipairs(words) do
    if m:find(w, 1, true) then return true end
  end
  return false
end

local function retryable(code, message)
  if RETRYABLE_CODES[code] then return true end
  if code == 889 and type(message) == "string" then
    local m = message:lower()
    return mentions(m, inferred.CODE_889_TRANSIENT_WORDS) and not mentions(m, inferred.CODE_889_FINAL_WORDS)
  end
  return false
end
_M.retryable = retryable

local function first_error(list)
  if type(list) == "table" and type(list[1]) == "table" then return list[1] end
end

local function http_error(reply, code, message)
  local s = reply.status
  local kind, again = "http", false
  if s == 401 or s == 403 then
    kind = "auth"
    again = code == 4001
  elseif s == 429 then
    kind, again = "rate_limited", true
  elseif s >= 500 or s == 461 then
    again = true
  elseif code then
    kind = "api"
    again = retryable(code, message)
  end
  return errors.new {
    kind = kind, status = s, code = code, message = message or ("HTTP " .. s),
    request_id = reply.request_id, retryable = again, retry_after = reply.retry_after,
  }
end

-- The v1.1 body: under the `response` root (S-V11 2018 samples, C-SHOPIFY, every other sample) or,
-- as the current customer/get and coupon/redeem samples print it, without it [DOC S-V11@20ecf691].
local function v11_body(b)
  if type(b) ~= "table" then return nil end
  local r = b.response
  if type(r) == "table" and type(r.status) == "table" then return r end
  if r == nil and inferred.V11_ROOT_OPTIONAL and type(b.status) == "table" then return b end
  return r
end
_M.v11_body = v11_body

-- What names a batch item: its bill number, identifier or channel (for failed items' reports).
local ITEM_KEYS = { "number", "channel", "mobile", "email", "external_id", "code", "id", "user_id" }
local function item_key(item)
  if type(item) ~= "table" then return nil end
  local parts = {}
  for _, k in ipairs(ITEM_KEYS) do
    local v = item[k]
    if (type(v) == "string" and v ~= "") or type(v) == "number" then parts[#parts + 1] = k .. "=" .. tostring(v) end
  end
  return #parts > 0 and table.concat(parts, " ") or nil
end

local function interpret_v11(reply)
  local body = v11_body(reply.body)
  local status = type(body) == "table" and type(body.status) == "table" and body.status
  if reply.status >= 300 then
    local code, message
    if status then
      normalize.normalize(body)
      code, message = status.code, status.message
      local failed = (normalize.items(body) or {})[1]
      if failed and failed.success == false then code, message = failed.code, failed.message end
    end
    local c = type(code) == "number" and code == code and code or nil
    return nil, http_error(reply, c, shape.message(message))
  end
  if not status then
    return nil, errors.new { kind = "decode", status = reply.status, request_id = reply.request_id,
                             message = "reply has no v1.1 envelope (status, with or without the response root)" }
  end
  normalize.normalize(body)
  local items, bad_field, bad_value = normalize.items(body)
  if not items then return nil, shape.bad(reply, bad_field, "an object or array", bad_value) end
  local failed, warnings = {}, {}
  for i = 1, #items do
    local it = items[i]
    if not it.success then failed[#failed + 1] = it end
    for _, w in ipairs(it.warnings) do warnings[#warnings + 1] = w end
  end
  -- Partial: API code 201, or the documented "200 Some requests have failed due to errors", or
  -- any failed item beside successful ones (whatever the status says).
  local partial = status.code == 201 or (#failed > 0 and #failed < #items)
    or (type(status.message) == "string" and status.message:lower():find("some requests have failed", 1, true) ~= nil)
  for _, f in ipairs(failed) do f.key = item_key(f.item) end
  if status.success == false or status.code == 500 or (#failed > 0 and #failed == #items and not partial) then
    local f = failed[1]
    local code = f and f.code or status.code
    if type(code) ~= "number" and type(code) ~= "string" then code = nil end
    local message = shape.message(f and f.message or status.message)
    return nil, errors.new {
      kind = "api", status = reply.status, code = code, message = message,
      request_id = reply.request_id, retryable = retryable(code, message), items = items,
    }
  end
  return {
    status = reply.status, request_id = reply.request_id, body = body, items = items,
    warnings = warnings, partial = partial, failed = partial and failed or nil,
  }
end

-- The points of a list of side effects (nil: no points effect), or nil, err naming the field.
-- `r` gives the reply's request id to an error, `field` the list's place in the reply.
local function sum_points(side_effects, r, field)
  local total
  field = field or "sideEffects"
  if shape.absent(side_effects) then return nil end
  if type(side_effects) ~= "table" then return nil, shape.bad(r, field, "an array", side_effects) end
  for i, e in ipairs(side_effects) do
    if type(e) == "table" and e.type == "points" then
      local raw = e.awardedPoints
      if raw == nil then raw = e.awarded_points end
      local n, err = shape.number(r, raw, field .. "[" .. i .. "].awardedPoints")
      if err then return nil, err end
      total = (total or 0) + (n or 0)
    end
  end
  return total
end
_M.sum_points = sum_points

local function interpret_v2(reply)
  local body, status = reply.body, reply.status
  local is_table = type(body) == "table"
  local e = is_table and body.errors ~= nil and first_error(body.errors)
  local ecode = e and tonumber(e.code)
  if ecode and ecode ~= ecode then ecode = nil end
  if status >= 300 then
    return nil, http_error(reply, ecode, e and shape.message(e.message))
  end
  if e then
    local code = ecode
    return nil, errors.new {
      kind = "api", status = status, code = code, message = shape.message(e.message), request_id = reply.request_id,
      retryable = retryable(code, shape.message(e.message)), errors = body.errors,
    }
  end
  if not is_table then
    return nil, errors.new { kind = "decode", status = status, request_id = reply.request_id,
                             message = "reply has no JSON body" }
  end
  -- The reply is this call's own and already holds status, request_id and body: it becomes the
  -- result, sparing a second table on every call.
  local warnings, effects = body.warnings, body.sideEffects
  if type(warnings) ~= "table" then
    if not shape.absent(warnings) then return nil, shape.bad(reply, "warnings", "an array", warnings) end
    warnings = {}
  end
  reply.warnings = warnings
  reply.created_id, reply.entity = body.createdId, body.entity
  if effects ~= nil then
    local points, perr = sum_points(effects, reply)
    if perr then return nil, perr end
    reply.points_earned = points
  end
  reply.partial = status == 201
  return reply
end

--- reply (from core.decode_reply, the caller's own) -> result (possibly the reply itself) or nil, err.
function _M.interpret(reply, spec)
  if spec.version == "v1.1" then return interpret_v11(reply) end
  return interpret_v2(reply)
end

------------------------------------------------------------------------------------------
-- Operations: each returns a request spec; `pick` fills typed fields of the result.

local V11_IDS = { "mobile", "email", "external_id", "id", "card_number", "card_external_id" }

local function check_value(name, v)
  local t = type(v)
  if t == "number" then return tostring(v) end
  if t ~= "string" then error("loyalty: " .. name .. " must be a string or number", 4) end
  if not util.single_line(v, 256) then return nil, name end
  return v
end

-- Copies the customer identifier (and listed flags) of `args` into a v1.1 query.
local function identifier_query(args, flags)
  if type(args) ~= "table" then error("loyalty: arguments table expected", 3) end
  local q = { format = "json" }
  local found
  for _, k in ipairs(V11_IDS) do
    if args[k] ~= nil then
      local v, bad = check_value(k, args[k])
      if not v then return nil, errors.config("invalid identifier value for '" .. bad .. "'", bad) end
      q[k], found = v, true
    end
  end
  if not found then
    return nil, errors.config("a customer identifier (mobile, email, external_id or id) is required", "identifier")
  end
  for _, f in ipairs(flags or {}) do
    if args[f] ~= nil then q[f] = tostring(args[f]) end
  end
  return q
end

local function v11_list(wrapper, value)
  if type(value) ~= "table" then error("loyalty: " .. wrapper .. " table expected", 4) end
  if value[1] == nil then value = { value } end
  return { root = { [wrapper] = value } }
end

-- container.child of a v1.1 body, type-checked: the list of objects (nil: absent) or nil, err.
local function list_of(r, container, name, child)
  local box, err = shape.object(r, container, name)
  if err then return nil, err end
  if not box then return nil end
  return shape.objects(r, box[child], name .. "." .. child)
end

-- container.child where child is one object (or a one-element array of it), type-checked.
local function object_in(r, container, name, child)
  local box, err = shape.object(r, container, name)
  if err or not box then return nil, err end
  return shape.one(r, box[child], name .. "." .. child)
end

-- The typed fields each operation adds to its result; module-level, so no closure per call. A pick
-- returns an error (a decode error naming the field) when the reply has a field of the wrong type.
local pick = {}
function pick.customer(r)
  local list, err = list_of(r, r.body.customers, "customers", "customer")
  if err then return err end
  r.customer = list and list[1]
end
function pick.customers(r)
  local list, err = list_of(r, r.body.customers, "customers", "customer")
  if err then return err end
  r.customers = list or {}
  r.customer = r.customers[1]
end
function pick.subscriptions(r)
  local list, err = list_of(r, r.body.subscriptions, "subscriptions", "subscription")
  if err then return err end
  r.subscriptions = list or {}
end
function pick.redeemable_points(r)
  local red, err = object_in(r, r.body.points, "points", "redeemable")
  if err then return err end
  r.redeemable = red
end
function pick.validation(r)
  local box, err = shape.object(r, r.body.validation_code, "validation_code")
  if err then return err end
  -- Documented as an object {user_id, mobile, points, item_status}.
  local code
  code, err = shape.one(r, box and box.code, "validation_code.code")
  if err then return err end
  r.validation = code
end
function pick.redemption(r)
  local red, err = object_in(r, r.body.responses, "responses", "points")
  if err then return err end
  r.redemption = red
end
function pick.redeemable_coupon(r)
  local red, err = object_in(r, r.body.coupons, "coupons", "redeemable")
  if err then return err end
  r.redeemable = red
end
function pick.coupon(r)
  local list, err = list_of(r, r.body.coupons, "coupons", "coupon")
  if err then return err end
  r.coupon = list and list[1]
end
function pick.customer_id(r)
  local id = r.entity
  local t = type(id)
  if t ~= "number" and t ~= "string" then
    local err
    id, err = shape.scalar(r, id, "entity")
    if err then return err end
  end
  r.customer_id = id
end
function pick.body_as_customer(r) r.customer = r.body end
function pick.reversal(r) r.reversal = r.body end
function pick.otp_valid(r) r.valid = r.entity == true end
function pick.otp_code(r)
  local code, err = shape.scalar(r, r.body.code, "code")
  if err then return err end
  r.code = code
end
-- [DOC S-V11 "Get Customer Transactions"] `count` (all matching transactions, a number), `start`
-- (the id of the first one shown) and `rows` (how many are shown) page the history.
function pick.customer_transactions(r)
  local c, err = shape.one(r, r.body.customer, "customer")
  if err then return err end
  r.customer = c
  local list
  if c then
    list, err = list_of(r, c.transactions, "customer.transactions", "transaction")
    if err then return err end
    r.count, err = shape.number(r, c.count, "customer.count")
    if err then return err end
    r.rows, err = shape.number(r, c.rows, "customer.rows")
    if err then return err end
    local start
    start, err = shape.text(r, c.start, "customer.start")
    if err then return err end
    r.start = start ~= "" and start or nil
  end
  r.transactions = list or {}
end

local ops = {}
_M.ops = ops

local GET_FLAGS = { "points_summary", "subscriptions", "user_id", "transactions", "next_slab", "mlp",
                    "program_id", "expiry_schedule", "card_details", "basic" }

function ops.customer_get(args)
  local q, err = identifier_query(args, GET_FLAGS)
  if not q then return nil, err end
  return { method = "GET", path = "/v1.1/customer/get", query = q, version = "v1.1", pick = pick.customer }
end

function ops.customer_add(customer)
  return { method = "POST", path = "/v1.1/customer/add", query = { format = "json" }, version = "v1.1",
           json = v11_list("customer", customer), pick = pick.customers }
end

-- customer/search (§4.1): q = "(NAME:EQUALS:value)" (custom fields are searchable);
-- r.customers = results.item[] (an empty list when nothing matches: v1.1 names no not-found).
function pick.customer_search(r)
  local c = type(r.body.customer) == "table" and r.body.customer or {}
  local items = type(c.results) == "table" and c.results.item or {}
  if type(items) ~= "table" then items = {} end
  if items[1] == nil and next(items) ~= nil then items = { items } end
  r.customers = items
end

function ops.customer_search(args)
  if type(args) ~= "table" then error("loyalty: arguments table expected", 2) end
  local q, bad = check_value("q", args.q)
  if not q then return nil, errors.config("invalid search query", bad) end
  return { method = "GET", path = "/v1.1/customer/search", query = { format = "json", q = q }, version = "v1.1",
           pick = pick.customer_search }
end

function ops.customer_update(customer)
  return { method = "POST", path = "/v1.1/customer/update", query = { format = "json" }, version = "v1.1",
           json = v11_list("customer", customer), pick = pick.customer }
end

function ops.customer_subscriptions(list)
  return { method = "POST", path = "/v1.1/customer/subscriptions", query = { format = "json" },
           version = "v1.1", json = v11_list("subscription", list), pick = pick.subscriptions }
end

-- Bill numbers are unique at the CRM (604 on a replay), which makes transaction/add safe to
-- retry: a 604 on a retry means an earlier attempt landed.
local function pick_transaction(r)
  local list, err = list_of(r, r.body.transactions, "transactions", "transaction")
  if err then return err end
  local tx = list and list[1]
  r.transaction = tx
  if tx then
    local field = "transactions.transaction[1]"
    r.customer, err = shape.one(r, tx.customer, field .. ".customer")
    if err then return err end
    local box
    box, err = shape.object(r, tx.side_effects, field .. ".side_effects")
    if err then return err end
    r.points_earned, err = sum_points(box and box.effect, r, field .. ".side_effects.effect")
    if err then return err end
    r.points_deducted, err = shape.number(r, tx.points_deducted, field .. ".points_deducted")
    if err then return err end
  end
end

function ops.transaction_add(tx)
  if type(tx) ~= "table" then error("loyalty: transaction table expected", 2) end
  local number = tx[1] and tx[1].number or tx.number
  return { method = "POST", path = "/v1.1/transaction/add", query = { format = "json" }, version = "v1.1",
           json = v11_list("transaction", tx), idempotent = number ~= nil, duplicate_code = 604,
           pick = pick_transaction }
end

function ops.transaction_get(args)
  if type(args) ~= "table" then error("loyalty: arguments table expected", 2) end
  local v, bad = check_value("number", args.number)
  if not v then return nil, errors.config("invalid bill number", bad) end
  return { method = "GET", path = "/v1.1/transaction/get", query = { format = "json", number = v },
           version = "v1.1", pick = pick_transaction }
end

local HISTORY_FLAGS = { "number", "transaction_id", "custom_fields", "points_breakup", "start_date", "end_date",
                        "limit", "offset", "sort", "order" }

-- A customer's bills and returns (§4.1): `number` narrows to one bill; `custom_fields=true`
-- shows each transaction's custom fields. r.transactions is an array.
function ops.customer_transactions(args)
  local q, err = identifier_query(args, HISTORY_FLAGS)
  if not q then return nil, err end
  return { method = "GET", path = "/v1.1/customer/transactions", query = q, version = "v1.1",
           pick = pick.customer_transactions }
end

local POINTS_FLAGS = { "points", "issue_otp", "validation_code", "skip_validation", "program_id",
                       "validation_type", "currency_input", "currency_value" }

-- program_id is mandatory [DOC S-DOCS reference/check-if-points-redeemable] (S-V11 listed it as
-- optional; the current docs win, see inferred in docs/capillary.md).
function ops.points_isredeemable(args)
  local q, err = identifier_query(args, POINTS_FLAGS)
  if not q then return nil, err end
  if q.program_id == nil and inferred.ISREDEEMABLE_PROGRAM_ID_REQUIRED then
    return nil, errors.config("points/isredeemable needs program_id (mandatory in the current docs)", "program_id")
  end
  return { method = "GET", path = "/v1.1/points/isredeemable", query = q, version = "v1.1",
           pick = pick.redeemable_points }
end

function ops.points_validation_code(args)
  local q, err = identifier_query(args, { "points", "program_id" })
  if not q then return nil, err end
  return { method = "GET", path = "/v1.1/points/validationcode", query = q, version = "v1.1", pick = pick.validation }
end

-- external_reference_number is the documented idempotency key (§7): with it a retry is safe.
function ops.points_redeem(args, query)
  if type(args) ~= "table" then error("loyalty: redeem table expected", 2) end
  local q = { format = "json" }
  for k, v in pairs(query or {}) do q[k] = tostring(v) end
  return { method = "POST", path = "/v1.1/points/redeem", query = q, version = "v1.1",
           json = v11_list("redeem", args), idempotent = args.external_reference_number ~= nil,
           pick = pick.redemption }
end

function ops.coupon_isredeemable(args)
  local q, err = identifier_query(args, { "code", "details" })
  if not q then return nil, err end
  return { method = "GET", path = "/v1.1/coupon/isredeemable", query = q, version = "v1.1",
           pick = pick.redeemable_coupon }
end

function ops.coupon_redeem(args)
  return { method = "POST", path = "/v1.1/coupon/redeem", query = { format = "json" }, version = "v1.1",
           json = v11_list("coupon", args), pick = pick.coupon }
end

-- v2 -------------------------------------------------------------------------------------

local function path_id(id)
  local v = check_value("id", id)
  if not v or not v:match("^[%w%-_]+$") then return nil end
  return v
end

function ops.v2_customer_create(body, query)
  return { method = "POST", path = "/v2/customers", query = query, json = body, version = "v2" }
end

function ops.v2_customer_update(id, body, query)
  local pid = path_id(id)
  if not pid then return nil, errors.config("invalid customer id", "id") end
  return { method = "PUT", path = "/v2/customers/" .. pid, query = query or { source = "INSTORE" },
           json = body, version = "v2" }
end

function ops.v2_customer_lookup(query)
  return { method = "GET", path = "/v2/customers/lookup", query = query, version = "v2", pick = pick.customer_id }
end

function ops.v2_customer_get(id, query)
  local pid = path_id(id)
  if not pid then return nil, errors.config("invalid customer id", "id") end
  return { method = "GET", path = "/v2/customers/" .. pid, query = query, version = "v2",
           pick = pick.body_as_customer }
end

function ops.v2_transaction_add(body, query)
  if type(body) ~= "table" then error("loyalty: transaction table expected", 2) end
  return { method = "POST", path = "/v2/transactions", query = query, json = body, version = "v2",
           idempotent = body.billNumber ~= nil, duplicate_code = 604 }
end

function ops.v2_points_reverse(body)
  return { method = "POST", path = "/v2/points/reverse", json = body, version = "v2", pick = pick.reversal }
end

function ops.v2_otp_generate(body)
  return { method = "POST", path = "/v2/otp/generate", json = body, version = "v2" }
end

function ops.v2_otp_validate(body)
  return { method = "POST", path = "/v2/otp/validate", json = body, version = "v2", pick = pick.otp_valid }
end

function ops.v2_otp_get(query)
  return { method = "GET", path = "/v2/otp", query = query, version = "v2", pick = pick.otp_code }
end

return _M

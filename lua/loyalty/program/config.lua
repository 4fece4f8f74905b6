-- Store settings: the schema, defaults, and loading a user-editable store.conf.lua.
-- Every mistake is reported at load with the key's name, never mid-checkout.
local errors = require "loyalty.errors"
local schema = require "loyalty.schema"
local providers = require "loyalty.providers"
local client = require "loyalty.client"

local _M = {}

local function field(t, default, doc, one_of)
  return { type = t, default = default, doc = doc, one_of = one_of }
end

-- key -> field (loyalty.schema form). `provider` takes any registered provider (checked in check).
local SCHEMA = {
  provider = field("string", providers.DEFAULT, "CRM provider"),
  crm = field("table", nil, "CRM account: base_url or environment/cluster, and credentials"),
  use_order_store_till = field("boolean", false, "post orders against the store where they were placed"),
  store_tills = field("table", nil, "Basic auth: store code -> { username, password } of that store's till"),
  identifier = field("string", "mobile", "unique customer identifier: mobile, email, external_id or attribute:NAME"),
  profile_sync = field("string", "fill_blank", "on login: crm_wins or fill_blank",
                       { crm_wins = true, fill_blank = true }),
  sync_on_login = field("boolean", true, "update user data from the CRM on login"),
  registration = field("boolean", true, "post new sign-ups to the CRM"),
  registration_crm_first = field("boolean", false, "register at the CRM before the store account is created"),
  post_subscriptions = field("boolean", true, "post email/SMS opt-in and opt-out"),
  earn_on_order = field("boolean", true, "post successful orders so they earn points"),
  post_email_only_orders = field("boolean", false,
    "post orders whose customer has an email but not the store's identifier (mobile, or external_id when that is it)"),
  skip_redemption_otp = field("boolean", false, "redeem without an OTP"),
  rules = field("string", nil, "directory of rule files (redemption limits, category attributes)"),
  rules_check_interval_ms = field("number", 1000, "how often rule files are checked for edits"),
  rules_last_good = field("string", nil, "directory where each accepted rule set is saved and loaded from when the " ..
                          "rule files fail (at start or on an edit)"),
  source = field("string", "INSTORE", "CRM source for registrations and transactions"),
  -- Unset, the customer's first points summary names it.
  program_id = field("number", nil, "loyalty programme id, sent on points/isredeemable (mandatory there); "
                     .. "set it where the org has several"),
  outbox = field("table", nil, "durable outbox for writes that must not be lost (see docs/outbox.md)"),
  log = field("function", nil, "log(level, event, fields): structured events (loyalty.log); nginx: ngx.log"),
  clock = field("function", nil, "wall clock in seconds (holds and caches; tests set it)"),
  point_value_ttl_s = field("number", 300, "how long the CRM's value of a point is reused before it is asked again"),
  redemption_hold_s = field("number", 1800, "a redemption whose order is not placed within this is given back"),
  shopper_timeout_ms = field("number", 3000,
                             "deadline of shopper-facing reads (summary, quote, login sync), retries included"),
  order_log = field("table", nil, "JSON-lines log of posted orders for rules replay/drift (loyalty.program.order_log)"),
}
_M.SCHEMA = SCHEMA

local function config_error(key, message)
  return nil, errors.config("setting '" .. key .. "': " .. message, key)
end

-- A nested table's check error with its key under the parent ("crm.timeout").
local function nested(err, parent)
  if err.key then err.key = parent .. "." .. err.key end
  return nil, err
end

-- The schema with `provider` limited to the providers registered now.
local function fields_now()
  local one_of = {}
  for _, n in ipairs(providers.names()) do one_of[n] = true end
  local fields = schema.merge(SCHEMA)
  fields.provider = field("string", providers.DEFAULT, "CRM provider", one_of)
  return fields
end

-- The crm table's fields: the client's options for this provider (one source), less those the
-- program sets itself.
local function crm_fields(provider)
  local fields = client.option_fields(provider)
  fields.provider = nil
  return fields
end

--- Checks a settings table; returns a new table with defaults filled in, or nil, err.
function _M.check(t)
  if type(t) ~= "table" then return config_error("(file)", "settings must be a table") end
  local out, err = schema.check(fields_now(), t, "settings", "setting")
  if not out then return nil, err end
  if not out.crm then return config_error("crm", "missing (" .. SCHEMA.crm.doc .. ")") end
  local provider = assert(providers.get(out.provider))
  local crm
  crm, err = schema.check(crm_fields(provider), out.crm, "settings.crm", "setting")
  if not crm then
    local owner = err.key and providers.option_owners()[err.key]
    if owner and owner ~= provider.name then
      return config_error("crm." .. err.key, "belongs to the " .. owner .. " provider, not " .. provider.name)
    end
    return nested(err, "crm")
  end
  local storefront = providers.part(provider, "storefront")
  if storefront.check_settings then
    -- The provider refuses settings without a meaning there and fills its own defaults, seeing only
    -- the settings given (not the defaults filled above).
    local given = {}
    for k in pairs(t) do given[k] = out[k] end
    local ok, perr = storefront.check_settings(given)
    if not ok then return nil, perr end
    for k, v in pairs(given) do out[k] = v end
  end
  crm = out.crm
  if crm.username and not crm.password then return config_error("crm.password", "missing") end
  if crm.client_key and not crm.client_secret then return config_error("crm.client_secret", "missing") end
  for code, till in pairs(out.store_tills or {}) do
    local key = "store_tills." .. tostring(code)
    if type(till) ~= "table" or type(till.username) ~= "string" or type(till.password) ~= "string" then
      return config_error(key, "must be { username = \"...\", password = \"...\" }")
    end
  end
  if out.outbox then
    local ob
    ob, err = schema.check(require("loyalty.outbox").OPTIONS, out.outbox, "settings.outbox", "setting")
    if not ob then return nested(err, "outbox") end
    local b = out.outbox.backend or "sqlite"
    if b ~= "sqlite" and b ~= "redis" then return config_error("outbox.backend", "must be sqlite or redis") end
    if b == "sqlite" and not out.outbox.path then return config_error("outbox.path", "missing (the SQLite file)") end
    local m = out.outbox.max_attempts
    if m and (m < 1 or m ~= math.floor(m)) then
      return config_error("outbox.max_attempts", "must be a whole number >= 1")
    end
  end
  for _, k in ipairs { "point_value_ttl_s", "redemption_hold_s" } do
    if not (out[k] >= 0 and out[k] < 10 ^ 9) then return config_error(k, "must be 0 or more seconds") end
  end
  local st = out.shopper_timeout_ms
  if st ~= st or st < 1 or st > 86400000 then
    return config_error("shopper_timeout_ms", "must be from 1 to 86400000 milliseconds")
  end
  if out.order_log then -- keys checked by loyalty.program.order_log
    local lerr = require("loyalty.program.order_log").check_settings(out.order_log)
    if lerr then return nil, lerr end
  end
  local id = out.identifier
  if not (id == "mobile" or id == "email" or id == "external_id" or id:match("^attribute:[%w_%-]+$")) then
    return config_error("identifier", "must be mobile, email, external_id or attribute:NAME")
  end
  if out.registration_crm_first and not out.registration then
    return config_error("registration_crm_first", "needs registration = true")
  end
  return out
end

-- What a store.conf.lua may use: plain values, env("NAME") for secrets, nothing else.
local function file_env()
  return {
    env = function(name, default)
      local v = os.getenv(name)
      if v == nil or v == "" then return default end
      return v
    end,
    tonumber = tonumber,
  }
end

--- Loads and checks a settings file (a Lua chunk returning a table).
function _M.load(path)
  local f, oerr = io.open(path, "rb")
  if not f then return nil, errors.config("cannot read settings file: " .. tostring(oerr), "(file)") end
  local src = f:read("*a")
  f:close()
  local chunk, lerr
  if setfenv then -- luacheck: ignore setfenv
    if src:byte(1) == 27 then return nil, errors.config("settings file must be text", "(file)") end
    chunk, lerr = loadstring(src, "@" .. path) -- luacheck: ignore loadstring
    if chunk then setfenv(chunk, file_env()) end -- luacheck: ignore setfenv
  else
    chunk, lerr = load(src, "@" .. path, "t", file_env())
  end
  if not chunk then return nil, errors.config("settings file does not load: " .. lerr, "(file)") end
  local ok, t = pcall(chunk)
  if not ok then return nil, errors.config("settings file failed: " .. tostring(t), "(file)") end
  return _M.check(t)
end

return _M

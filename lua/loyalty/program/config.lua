-- Store settings: the schema, defaults, and loading a user-editable store.conf.lua.
-- Every mistake is reported at load with the key's name, never mid-checkout.
local errors = require "loyalty.errors"

local _M = {}

-- key -> { type, default, description, allowed values }
local SCHEMA = {
  provider = { "string", "capillary", "CRM provider", { capillary = true, crmcom = true } },
  crm = { "table", nil, "CRM account: base_url or environment/cluster, and credentials" },
  use_order_store_till = { "boolean", false, "post orders against the store where they were placed" },
  store_tills = { "table", nil, "Basic auth: store code -> { username, password } of that store's till" },
  identifier = { "string", "mobile", "unique customer identifier: mobile, email, external_id or attribute:NAME" },
  profile_sync = { "string", "fill_blank", "on login: crm_wins or fill_blank", { crm_wins = true, fill_blank = true } },
  sync_on_login = { "boolean", true, "update user data from the CRM on login" },
  registration = { "boolean", true, "post new sign-ups to the CRM" },
  registration_crm_first = { "boolean", false, "register at the CRM before the store account is created" },
  post_subscriptions = { "boolean", true, "post email/SMS opt-in and opt-out" },
  earn_on_order = { "boolean", true, "post successful orders so they earn points" },
  post_email_only_orders = { "boolean", false,
    "post orders whose customer has an email but not the store's identifier (mobile, or external_id when that is it)" },
  skip_redemption_otp = { "boolean", false, "redeem without an OTP" },
  rules = { "string", nil, "directory of rule files (redemption limits, category attributes)" },
  rules_check_interval_ms = { "number", 1000, "how often rule files are checked for edits" },
  rules_last_good = { "string", nil, "directory where each accepted rule set is saved and loaded from when the " ..
                      "rule files fail (at start or on an edit)" },
  source = { "string", "INSTORE", "CRM source for registrations and transactions" },
  -- points/isredeemable documents program_id as mandatory (docs.capillarytech.com
  -- reference/check-if-points-redeemable): unset, the customer's first points summary names it.
  program_id = { "number", nil, "loyalty programme id, sent on points/isredeemable (mandatory there); "
                 .. "set it where the org has several" },
  outbox = { "table", nil, "durable outbox for writes that must not be lost (see docs/outbox.md)" },
  log = { "function", nil, "log(level, event, fields): structured events (loyalty.log); nginx: ngx.log" },
  clock = { "function", nil, "wall clock in seconds (holds and caches; tests set it)" },
  point_value_ttl_s = { "number", 300, "how long the CRM's value of a point is reused before it is asked again" },
  redemption_hold_s = { "number", 1800, "a redemption whose order is not placed within this is given back" },
  shopper_timeout_ms = { "number", 3000,
                         "deadline of shopper-facing reads (summary, quote, login sync), retries included" },
  order_log = { "table", nil, "JSON-lines log of posted orders for rules replay/drift (loyalty.program.order_log)" },
}
_M.SCHEMA = SCHEMA

-- Keys of the crm table; credentials are checked by the client itself.
local CRM_KEYS = {
  base_url = "string", environment = "string", cluster = "string", username = "string", password = "string",
  client_key = "string", client_secret = "string", token_header = "string", attribution = "table",
  timeout_ms = "number", connect_timeout_ms = "number", max_attempts = "number", ca_file = "string",
  ca_path = "string", insecure = "boolean", proxy = "string", token_store = "table", transport = "table",
  sleep = "function", backoff_base_ms = "number", backoff_max_ms = "number", retry_after_max_ms = "number",
  organisation = "string", unit = "string", api_key = "string", -- CRM.COM logins
  release = "string", sync_definition = "table", -- CRM.COM release (docs/crmcom.md)
  log = "function",
}

-- Keys of the outbox table (loyalty.outbox.open and loyalty.outbox.drainer options).
local OUTBOX_KEYS = {
  backend = "string", path = "string", host = "string", port = "number", key = "string", password = "string",
  timeout_ms = "number", busy_timeout_ms = "number", always = "boolean", max_attempts = "number",
  backoff_base_s = "number", backoff_max_s = "number", lease_s = "number",
  keep_delivered_s = "number", -- SQLite: delivered entries are purged after this long (3 days)
}

local function config_error(key, message)
  return nil, errors.config("setting '" .. key .. "': " .. message, key)
end

--- Checks a settings table; returns a new table with defaults filled in, or nil, err.
function _M.check(t)
  if type(t) ~= "table" then return config_error("(file)", "settings must be a table") end
  local out = {}
  for k, v in pairs(t) do
    local s = SCHEMA[k]
    if not s then return config_error(tostring(k), "unknown setting") end
    if type(v) ~= s[1] then
      return config_error(k, "must be a " .. s[1] .. " (" .. s[3] .. "), got " .. type(v))
    end
    if s[4] and not s[4][v] then return config_error(k, "'" .. tostring(v) .. "' is not one of the allowed values") end
    out[k] = v
  end
  if out.provider == "crmcom" then
    -- Settings without a CRM.COM meaning are refused here, at load; its own defaults are filled.
    local ok, perr = require("loyalty.providers.crmcom.storefront").check_settings(out)
    if not ok then return nil, perr end
  end
  for k, s in pairs(SCHEMA) do
    if out[k] == nil then out[k] = s[2] end
  end
  if not out.crm then return config_error("crm", "missing (" .. SCHEMA.crm[3] .. ")") end
  for k, v in pairs(out.crm) do
    local want = CRM_KEYS[k]
    if not want then return config_error("crm." .. tostring(k), "unknown setting") end
    if type(v) ~= want then return config_error("crm." .. k, "must be a " .. want .. ", got " .. type(v)) end
  end
  local crm = out.crm
  if not (crm.username or crm.client_key or crm.api_key) then
    return config_error("crm.username", "credentials missing: username/password or client_key/client_secret")
  end
  if crm.username and not crm.password then return config_error("crm.password", "missing") end
  if crm.client_key and not crm.client_secret then return config_error("crm.client_secret", "missing") end
  if not (crm.base_url or crm.environment) then -- crmcom: checked above
    return config_error("crm.environment", "set environment (and cluster for production) or base_url")
  end
  for code, till in pairs(out.store_tills or {}) do
    local key = "store_tills." .. tostring(code)
    if type(till) ~= "table" or type(till.username) ~= "string" or type(till.password) ~= "string" then
      return config_error(key, "must be { username = \"...\", password = \"...\" }")
    end
  end
  if out.outbox then
    for k, v in pairs(out.outbox) do
      local want = OUTBOX_KEYS[k]
      if not want then return config_error("outbox." .. tostring(k), "unknown setting") end
      if type(v) ~= want then return config_error("outbox." .. k, "must be a " .. want .. ", got " .. type(v)) end
    end
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

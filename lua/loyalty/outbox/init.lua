-- The outbox: writes that must not be lost, kept durably until a drainer delivers them.
-- One small interface, two backends: SQLite (embedded, via loyalty.core) and Redis (a fleet).
--
--   ob = outbox.open{ backend = "sqlite", path = "/var/lib/store/outbox.db" }
--   ob = outbox.open{ backend = "redis", host = "127.0.0.1", port = 6379, key = "loyalty:outbox" }
--   ob:put{ kind, customer_key, payload, till, dedupe_key, next_at, secrets } -> id, existing | nil, err
--   ob:find(dedupe_key) -> entry | nil (| nil, err)
--   ob:due(now, limit [, lease_seconds]) -> { entry, ... }  (claimed: at most one per customer)
--   ob:mark_delivered(id), ob:mark_failed(id, err, next_at), ob:mark_dead(id, err), ob:retry(id)
--   ob:get(id) -> entry | nil, ob:status() -> { counts, oldest_pending, dead }, ob:close()
--
-- entry = { id, kind, customer_key, till, payload, attempts, next_at, state, last_error,
--           created_at, lease_until }
local core = require "loyalty.core"
local errors = require "loyalty.errors"
local env = require "loyalty.env"
local util = require "loyalty.util"
local schema = require "loyalty.schema"

local _M = {}

-- The program's kinds of must-not-lose write; each provider's replay policy says how it replays
-- them (loyalty.providers: `replay`). The names are stored with each entry, so they stay.
_M.KINDS = {
  transaction_add = true,        -- an order
  transaction_return = true,     -- a return against an order's bill
  customer_add = true,           -- a sign-up
  customer_subscriptions = true, -- opt-in / opt-out
  points_reverse = true,         -- a redemption reversal
  redemption_hold = true,        -- a redemption's hold: due at its expiry, reversed unless the bill is there
}

local MAX_KEY = 512
local MAX_PAYLOAD = 256 * 1024

function _M.storage_error(message, fields)
  local e = { kind = "storage", message = message, retryable = true }
  for k, v in pairs(fields or {}) do e[k] = v end
  return errors.new(e)
end

local function check_text(name, v, max)
  if not util.single_line(v, max) then
    error("loyalty.outbox: " .. name .. " must be a non-empty single-line string of at most " .. max .. " bytes", 4)
  end
end

-- The outbox is a plain file or a shared Redis, and the drainer resolves credentials again from
-- its own settings: a payload must hold none. The check looks at the caller's credentials
-- (entry.secrets: the client's password, its Basic value, client secret, tokens), never at what a
-- payload looks like: a product called "Basic Tee" or a note saying "token: x" is order data.
local function holds_secret(json, secrets)
  if type(secrets) ~= "table" then return false end
  for _, secret in ipairs(secrets) do
    if type(secret) == "string" and #secret >= errors.MIN_SECRET and json:find(secret, 1, true) then return true end
  end
  return false
end

--- Validates an entry for put and returns its stored form {kind, customer_key, till,
-- dedupe_key, payload_json}, or nil, err (kind storage: the entry cannot be stored; the caller
-- still has it). Raises on programmer errors (unknown kind, bad key types).
function _M.prepare(entry)
  if type(entry) ~= "table" then error("loyalty.outbox: entry table expected", 3) end
  if not _M.KINDS[entry.kind] then error("loyalty.outbox: unknown entry kind '" .. tostring(entry.kind) .. "'", 3) end
  check_text("customer_key", entry.customer_key, MAX_KEY)
  if entry.till ~= nil then check_text("till", entry.till, MAX_KEY) end
  if entry.dedupe_key ~= nil then check_text("dedupe_key", entry.dedupe_key, MAX_KEY) end
  if type(entry.payload) ~= "table" then error("loyalty.outbox: payload table expected", 3) end
  if entry.next_at ~= nil and type(entry.next_at) ~= "number" then
    error("loyalty.outbox: next_at must be a number", 3)
  end
  if entry.secrets ~= nil and type(entry.secrets) ~= "table" then error("loyalty.outbox: secrets list expected", 3) end
  local json, err = core.json_encode(entry.payload)
  if not json then
    return nil, _M.storage_error("payload cannot be stored: " .. tostring(err and err.message or err),
                                 { retryable = false })
  end
  if #json > MAX_PAYLOAD then
    return nil, _M.storage_error("payload too large for the outbox", { retryable = false })
  end
  if holds_secret(json, entry.secrets) then
    return nil, _M.storage_error("payload holds one of the client's credentials: not stored", { retryable = false })
  end
  return { kind = entry.kind, customer_key = entry.customer_key, till = entry.till,
           dedupe_key = entry.dedupe_key, payload_json = json, next_at = entry.next_at }
end

function _M.decode_payload(json)
  local v = core.json_decode(json)
  if type(v) ~= "table" then return {} end
  return v
end

--- Short text of an error for last_error (already scrubbed by the client).
function _M.error_text(err)
  if type(err) == "table" then
    local s = tostring(err)
    if s:sub(1, 6) == "table:" then s = tostring(err.message or err.kind) end
    return util.one_line(s, 1000)
  end
  return util.one_line(err, 1000)
end

-- Wall-clock seconds with sub-second precision where available (entries outlive processes, so
-- a monotonic clock would not do).
_M.clock = env.wall_time

local BACKENDS = { sqlite = "loyalty.outbox.sqlite", redis = "loyalty.outbox.redis" }

-- The options of open (loyalty.schema fields): the backend's, and the drainer's that a program's
-- `outbox` setting carries beside them.
_M.OPTIONS = {
  backend = { type = "string", one_of = { sqlite = true, redis = true }, default = "sqlite" },
  path = { type = "string", doc = "the SQLite file" },
  busy_timeout_ms = { type = "number", min = 0, max = 600000, doc = "SQLite: wait for another process's lock" },
  keep_delivered_s = { type = "number", min = 0, doc = "SQLite: seconds delivered entries are kept" },
  host = "string", port = "number", key = "string", password = "string",
  timeout_ms = { type = "number", above = 0, doc = "Redis: milliseconds per command" },
  always = { type = "boolean", doc = "queue every write, not only failed ones" },
  max_attempts = "number", backoff_base_s = "number", backoff_max_s = "number", lease_s = "number",
  clock = { type = "function", doc = "wall clock in seconds" },
}

--- The checked options with defaults (backend "sqlite"), or nil, err (kind config, err.key
-- "outbox.<name>"). The backends call it, so opening one directly reads the same.
function _M.check_options(opts)
  local out, err = schema.check(_M.OPTIONS, opts, "loyalty.outbox")
  if not out then
    err.key = "outbox." .. tostring(err.key or "(options)")
    return nil, err
  end
  return out
end

--- outbox.open{backend = "sqlite", path, busy_timeout_ms, keep_delivered_s} | {backend = "redis",
-- host, port, key, password, timeout_ms} -> outbox | nil, err
function _M.open(opts)
  if type(opts) ~= "table" then error("loyalty.outbox: options table expected", 2) end
  local checked, err = _M.check_options(opts)
  if not checked then return nil, err end
  return require(BACKENDS[checked.backend]).open(opts)
end

return _M

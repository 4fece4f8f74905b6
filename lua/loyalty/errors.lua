-- The one error shape every layer returns: `nil, err` with err a table of this kind.
local _M = {}

local KINDS = {
  config = true, network = true, timeout = true, tls = true, http = true,
  api = true, auth = true, rate_limited = true, decode = true,
  rules = true,   -- a rule file failed to load or evaluate
  refused = true, -- the program refused before any call (limits, missing OTP, setting off)
  storage = true, -- the outbox could not read or write its store
}
_M.KINDS = KINDS

--- Secrets shorter than this are not scrubbed: replacing a 1-byte "secret" would mangle every
-- word ("netw[REDACTED]rk"), and an empty one matches everywhere. Derived values that are
-- always long (the Basic header value, md5 of the password) are scrubbed whatever the length.
_M.MIN_SECRET = 6

--- err.raw (the start of a reply that was not JSON) is cut to this many bytes, after scrubbing.
_M.RAW_CAP = 2048

local REDACTED = "[REDACTED]"

local Error = {}
Error.__index = Error
_M.Error = Error

-- A field as text for __tostring, whatever a reply put there: never raises.
local function text(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" or t == "boolean" then return tostring(v) end
  return "(" .. t .. ")"
end

function Error:__tostring()
  local kind = rawget(self, "kind")
  local parts = { "loyalty: " .. text(kind) .. " error" }
  local code, status, message = rawget(self, "code"), rawget(self, "status"), rawget(self, "message")
  local request_id, attempts = rawget(self, "request_id"), rawget(self, "attempts")
  if code ~= nil then parts[#parts + 1] = " " .. text(code) end
  if status ~= nil and status ~= code then parts[#parts + 1] = " (HTTP " .. text(status) .. ")" end
  if message ~= nil then parts[#parts + 1] = ": " .. text(message) end
  if request_id ~= nil then parts[#parts + 1] = " [request " .. text(request_id) .. "]" end
  if type(attempts) == "number" and attempts > 1 then parts[#parts + 1] = " after " .. attempts .. " attempts" end
  return table.concat(parts)
end

local function is_error(v)
  return getmetatable(v) == Error
end
_M.is_error = is_error

--- Makes an error table; `fields.kind` must be one of KINDS.
function _M.new(fields)
  assert(type(fields) == "table" and KINDS[fields.kind], "errors.new: unknown error kind")
  if fields.retryable == nil then fields.retryable = false end
  return setmetatable(fields, Error)
end

--- Shorthand for a configuration (caller input) error naming the offending key.
function _M.config(message, key)
  return _M.new { kind = "config", message = message, key = key }
end

--- A reply field of the wrong type (or a non-finite number): a decode error naming the field.
-- `r` is the reply or result it came from (status, request_id), `got` the value found.
function _M.bad_field(r, field, want, got)
  local t = type(got)
  if got == nil then
    t = "nothing"
  elseif t == "userdata" then
    t = "null"
  elseif t == "number" and (got ~= got or got == math.huge or got == -math.huge) then
    t = "a non-finite number"
  end
  return _M.new {
    kind = "decode", field = field, retryable = true,
    status = type(r) == "table" and r.status or nil, request_id = type(r) == "table" and r.request_id or nil,
    message = "reply field '" .. field .. "' must be " .. want .. ", got " .. t,
  }
end

local replace_plain = require("loyalty.util").replace_plain

--- Removes every registered secret from a string. Secrets that are not strings or shorter than
-- MIN_SECRET bytes are ignored. Give longer secrets first (the client does), so that a
-- secret containing another is replaced whole.
local function scrub_string(s, secrets)
  if type(s) ~= "string" or not secrets then return s end
  local min = _M.MIN_SECRET
  for i = 1, #secrets do
    local secret = secrets[i]
    if type(secret) == "string" and #secret >= min and #s >= #secret then s = replace_plain(s, secret, REDACTED) end
  end
  return s
end
_M.scrub_string = scrub_string

--- Scrubs the registered secrets out of every string field of an error (recursively, each table
-- once), then cuts every `raw` field to RAW_CAP bytes: scrubbing first, so that a cut can never
-- leave part of a secret behind.
function _M.scrub(err, secrets)
  if type(err) ~= "table" then return err end
  if secrets and #secrets == 0 then secrets = nil end
  local cap = _M.RAW_CAP
  local seen = {}
  local function walk(t)
    if seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(v) == "string" then
        if secrets then v = scrub_string(v, secrets) end
        if k == "raw" and #v > cap then v = v:sub(1, cap) end
        t[k] = v
      elseif type(v) == "table" then
        walk(v)
      end
    end
  end
  walk(err)
  return err
end

return _M

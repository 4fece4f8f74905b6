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

local Error = {}
Error.__index = Error
_M.Error = Error

function Error:__tostring()
  local parts = { "loyalty: " .. self.kind .. " error" }
  if self.code then parts[#parts + 1] = " " .. tostring(self.code) end
  if self.status and self.status ~= self.code then parts[#parts + 1] = " (HTTP " .. self.status .. ")" end
  if self.message then parts[#parts + 1] = ": " .. self.message end
  if self.request_id then parts[#parts + 1] = " [request " .. self.request_id .. "]" end
  if self.attempts and self.attempts > 1 then parts[#parts + 1] = " after " .. self.attempts .. " attempts" end
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

-- Removes every registered secret from a string. Secrets shorter than 4 bytes are ignored
-- so that scrubbing never mangles ordinary words.
local function scrub_string(s, secrets)
  for i = 1, #secrets do
    local secret = secrets[i]
    local from = 1
    while true do
      local a, b = s:find(secret, from, true)
      if not a then break end
      s = s:sub(1, a - 1) .. "[REDACTED]" .. s:sub(b + 1)
      from = a + 10
    end
  end
  return s
end

--- Scrubs the registered secrets out of every string field of an error (recursively, once).
function _M.scrub(err, secrets)
  if not secrets or #secrets == 0 or type(err) ~= "table" then return err end
  local seen = {}
  local function walk(t)
    if seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(v) == "string" then
        t[k] = scrub_string(v, secrets)
      elseif type(v) == "table" then
        walk(v)
      end
    end
  end
  walk(err)
  return err
end

_M.scrub_string = scrub_string

return _M

-- Structured events for an optional sink: `log(level, event, fields)`, where level is
-- "debug" | "info" | "warn" | "error", event a short name ("retry", "token_refresh",
-- "queued", "rules_rejected", "point_value_mismatch", …) and fields a flat table.
-- Strings in fields are scrubbed of the caller's secrets; a failing sink never breaks a call.
local errors = require "loyalty.errors"
local env = require "loyalty.env"

local _M = {}

_M.LEVELS = { debug = true, info = true, warn = true, error = true }

--- The sink used when the caller names none: ngx.log inside nginx (loyalty.ngx.log), nothing elsewhere.
function _M.default()
  if env.in_nginx then return require("loyalty.ngx").log end
  return nil
end

--- Sends one event to `sink` (nil: dropped). `secrets` is the client's scrub list, if any.
function _M.emit(sink, level, event, fields, secrets)
  if not sink then return end
  local out = {}
  for k, v in pairs(fields or {}) do
    if type(v) == "string" and secrets then v = errors.scrub_string(v, secrets) end
    if type(v) ~= "table" and type(v) ~= "function" and type(v) ~= "userdata" then out[k] = v end
  end
  pcall(sink, level, event, out)
end

return _M

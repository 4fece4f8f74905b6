-- The CRM.COM sandbox's envelope ({status, data}) and what every Web API method reads its request
-- with: the release served, flattened GET identifiers, fields_set.
local json = require("loyalty.sandbox.json")
local inferred = require("loyalty.sandbox.crmcom.inferred")

local _M = {}
local array = json.array

local function envelope(code, message, data)
  return { status = { code = code, message = message or json.null, description = json.null },
           data = data == nil and json.null or data }
end
_M.envelope = envelope

local function ok(data) return 200, envelope("OK", nil, data) end
local function err(code, message)
  return inferred.ERROR_HTTP[code] or inferred.DEFAULT_ERROR_HTTP, envelope(code, message)
end

-- The release the sandbox serves (seed crmcom.release, default inferred.DEFAULT_RELEASE) as a number.
local function release(cfg) return cfg.release or 17 end

-- GET identifiers arrive flattened: `rewards_participant_identifier=number=29`.
local function unflatten(v)
  if type(v) ~= "string" then return v end
  local field, value = v:match("^([%w_]+)=(.*)$")
  if not field then return nil end
  return { [field] = value }
end

-- fields_set: the listed top-level keys of data (of each item for arrays).
local function select_fields(data, fs)
  if type(fs) ~= "string" or fs == "" or type(data) ~= "table" then return data end
  local keep = {}
  for f in fs:gmatch("[^,%s]+") do keep[f] = true end
  local function pick(t)
    local out = {}
    for k, v in pairs(t) do if keep[k] then out[k] = v end end
    return out
  end
  if data[1] ~= nil or getmetatable(data) then
    local out = array {}
    for i, t in ipairs(data) do out[i] = pick(t) end
    return out
  end
  return pick(data)
end

-- [DOC CRM-WIKI x/yHkH, pageId=489928 v5 example] show returns sign_up_on, life_cycle_state,

_M.ok, _M.err, _M.release, _M.unflatten, _M.select_fields = ok, err, release, unflatten, select_fields

return _M

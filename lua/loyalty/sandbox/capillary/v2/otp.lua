-- Capillary v2 OTPs: POST /v2/otp/generate and /v2/otp/validate, GET /v2/otp (over otp.lua).
local json = require("loyalty.sandbox.json")
local cstore = require("loyalty.sandbox.capillary.store")
local common = require("loyalty.sandbox.capillary.common")
local otp = require("loyalty.sandbox.capillary.otp")
local inferred = require("loyalty.sandbox.capillary.inferred")

local _M = {}
local array = json.array
local H = inferred.V2_HTTP

local ACTIONS = {}
for a in ("REGISTRATION POINTS COUPON GENERIC SUBSCRIPTION USERGROUP POINTSTRANSFER"):gmatch("%S+") do
  ACTIONS[a] = true
end
local ENTITY_TYPES = { email = "email", mobile = "mobile" }

local function otp_subject(entity_type, value)
  local kind = ENTITY_TYPES[tostring(entity_type or ""):lower()]
  local c = kind and cstore.find_customer(kind, tostring(value))
  if c then return otp.customer_subject(c), c end
  return otp.entity_subject(kind or entity_type, value)
end

local function otp_inputs(body)
  local errs = {}
  if not ACTIONS[tostring(body.action or ""):upper()] then
    errs[#errs + 1] = { code = 600, message = "\"Invalid or Null action passed\"" }
  end
  if not ENTITY_TYPES[tostring(body.entityType or ""):lower()] then
    errs[#errs + 1] = { code = 601, message = "\"Invalid or Null entity type passed\"" }
  end
  if body.entityValue == nil or body.entityValue == "" then
    errs[#errs + 1] = { code = 602, message = "\"Invalid or Null entity value passed\"" }
  end
  return errs
end

local function otp_generate(req)
  local body, status, err = common.v2_body(req)
  if not body then return status, err end
  local errs = otp_inputs(body)
  if errs[1] then return common.v2_errors(H.invalid, errs) end
  local subject = otp_subject(body.entityType, body.entityValue)
  local rec = otp.issue(req.cfg, subject, tostring(body.action):upper(), { via = "v2", channels = body.channels })
  if not rec then
    return common.v2_error(H.rate_limited, 429,
      "Rate limit exceeded. A maximum of 10 OTPs can be generated for an user per day")
  end
  return 200, { createdId = rec.id, warnings = array {} }
end

local function otp_validate(req)
  local body, status, err = common.v2_body(req)
  if not body then return status, err end
  local errs = otp_inputs(body)
  if body.code == nil or body.code == "" then
    errs[#errs + 1] = { code = 603, message = "\"Invalid or Null code passed\"" }
  end
  if errs[1] then return common.v2_errors(H.invalid, errs) end
  local subject = otp_subject(body.entityType, body.entityValue)
  local action = tostring(body.action):upper()
  if otp.matches(subject, action, body.code) then
    otp.consume(subject, action)
    return 200, { entity = true, warnings = array {} }
  end
  -- [DOC S-V2 _otp.md "Sample Failure Response"]: exactly {entity: false, warnings: []}.
  return 200, { entity = false, warnings = array {} }
end

local function otp_get(req)
  local a = req.args
  if type(a.identifierName) ~= "string" or type(a.identifierValue) ~= "string" then
    return common.v2_error(H.invalid, 8013, "Invalid identifier name or value")
  end
  local kind = common.V2_KINDS[a.identifierName] or a.identifierName
  local c = cstore.find_customer(kind, a.identifierValue)
  local subject = c and otp.customer_subject(c) or otp.entity_subject(kind, a.identifierValue)
  local rec = otp.current(subject, tostring(a.scope or "POINTS"):upper())
  if not rec then
    local e = inferred.V2_OTP_NOT_FOUND
    return common.v2_error(e.http, e.code, e.message)
  end
  return 200, { orgId = req.cfg.org.id, userId = c and c.id or -1, code = rec.code,
    validUpto = otp.iso8601(rec.valid_until), warnings = array {} }
end

_M.generate, _M.validate, _M.get = otp_generate, otp_validate, otp_get

return _M

-- The Capillary sandbox's validation codes (OTPs): one live code per subject and scope, the same
-- code reissued inside its validity window [DOC], a daily limit per subject [DOC: 10 per user per day].
local store = require("loyalty.sandbox.store")
local inferred = require("loyalty.sandbox.capillary.inferred")
local common = require("loyalty.sandbox.capillary.common")

local _M = {}

function _M.customer_subject(c) return "cust:" .. c.id end
function _M.entity_subject(kind, value) return "ent:" .. tostring(kind):lower() .. ":" .. tostring(value) end

local function key(subject, scope) return "otp:" .. subject .. ":" .. (scope or "GENERIC"):upper() end

--- Issues (or reissues) a code. Returns record {id, code, valid_until, reissued} or nil, "limit".
function _M.issue(cfg, subject, scope, meta)
  local conf = cfg.program.otp or {}
  local limit = conf.daily_limit or 10
  local day_key = "otpday:" .. subject .. ":" .. os.date("!%Y%m%d", ngx.time())
  local issued_today = store.incr(day_key, 1, 2 * 86400)
  if issued_today > limit then return nil, "limit" end
  local now = ngx.time()
  local rec = store.get_json(key(subject, scope))
  local reissued = rec ~= nil and rec.valid_until > now
  if not reissued then
    rec = {
      id = store.next_seq("otp"),
      code = common.random_id(inferred.OTP_ALPHABET, conf.length or 6),
      valid_until = now + (conf.validity_seconds or 300),
      issued_at = now,
    }
  end
  rec.subject, rec.scope, rec.meta = subject, (scope or "GENERIC"):upper(), meta
  store.set_json(key(subject, scope), rec)
  local n = store.next_seq("otplog")
  store.set_json("otplog:" .. n, {
    id = rec.id, subject = subject, scope = rec.scope, code = rec.code, valid_until = rec.valid_until,
    reissued = reissued, at = now, meta = meta,
  })
  rec.reissued = reissued
  return rec
end

--- The live code for subject/scope, or nil.
function _M.current(subject, scope)
  local rec = store.get_json(key(subject, scope))
  if rec and rec.valid_until > ngx.time() then return rec end
  return nil
end

--- True when code is the live code for subject/scope.
function _M.matches(subject, scope, code)
  local rec = _M.current(subject, scope)
  return rec ~= nil and code ~= nil and tostring(code) == rec.code
end

--- Retires the live code once it has been used.
function _M.consume(subject, scope)
  if inferred.OTP_CONSUMED_ON_USE then store.delete(key(subject, scope)) end
end

function _M.iso8601(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

return _M

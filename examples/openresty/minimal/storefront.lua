-- The smallest storefront module for examples/openresty/minimal/nginx.conf: the settings are
-- built once (module level), the program once per worker (loyalty.ngx.program caches it by this
-- table), and a shopper never sees an internal error.
local loyalty_ngx = require "loyalty.ngx"
local cjson = require "cjson.safe"

local _M = {}

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

-- Module level: once per worker. Never build this inside a handler (a new program each time).
local settings = {
  rules = env("LOYALTY_RULES"),                      -- a rule folder, or nil
  rules_last_good = env("LOYALTY_RULES_LAST_GOOD"),  -- where accepted rule sets are saved
  crm = {
    base_url = env("LOYALTY_BASE_URL") or "https://eu.api.capillarytech.com",
    username = env("LOYALTY_USERNAME"), password = env("LOYALTY_PASSWORD"),
    timeout_ms = 5000,
  },
}

local function answer(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  ngx.say(cjson.encode(value))
end

local UNAVAILABLE = { error = { code = "loyalty_unavailable", message = "Rewards are unavailable right now." } }

--- GET /loyalty/summary?mobile=... (a real store takes the shopper from its session)
function _M.summary()
  local program = loyalty_ngx.program(settings) -- logs the real reason when it cannot be made
  if not program then return answer(503, UNAVAILABLE) end
  local mobile = ngx.var.arg_mobile
  if not mobile then return answer(401, { error = { code = "login", message = "not logged in" } }) end
  local s, err = program:summary { mobile = mobile }
  if not s then
    ngx.log(ngx.ERR, "loyalty: summary: ", tostring(err))
    return answer(503, UNAVAILABLE)
  end
  return answer(200, { points = s.points, tier = s.tier, can_redeem = s.can_redeem })
end

function _M.metrics()
  local m = loyalty_ngx.metrics()
  if not m then return ngx.exit(404) end
  local program = loyalty_ngx.program(settings)
  return m:serve(program and program.outbox)
end

return _M

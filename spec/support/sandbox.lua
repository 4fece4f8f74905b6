-- Specs' one-liner: `local sb = require("support.sandbox").start()` starts the sandbox on a free
-- 127.0.0.1 port (stop it in lazy_teardown). Also helpers to call it with the seed's credentials.
local sandbox = require("loyalty.sandbox")
local http = require("support.http")

local _M = {}

_M.BASIC = http.BASIC
_M.OAUTH_KEY, _M.OAUTH_SECRET = "sandbox-key", "sandbox-secret"
_M.SHORT_KEY, _M.SHORT_SECRET = "sandbox-short-key", "sandbox-short-secret"
_M.TOM = { mobile = "919999000001", email = "tom@example.com", external_id = "TOM001" }
_M.RITA = { mobile = "917713643123", email = "rita.john@example.com", external_id = "XYPZ006" }
_M.HUCK = { mobile = "919999000003", email = "huck@example.com", external_id = "HUCK003" }

--- Starts a sandbox (opts as loyalty.sandbox.start); raises when it cannot start.
function _M.start(opts)
  local sb, err = sandbox.start(opts or {})
  assert(sb, err)
  local auth = { Authorization = http.BASIC }
  -- sb:get(path [, headers]), sb:post(path, json [, headers]), sb:put(...): Basic auth unless headers given.
  function sb.get(self, path, headers) return assert(http.get(self.url .. path, headers or auth)) end
  function sb.post(self, path, json, headers) return assert(http.post(self.url .. path, json, headers or auth)) end
  function sb.put(self, path, json, headers) return assert(http.put(self.url .. path, json, headers or auth)) end
  function sb.token(self, key, secret)
    local r = assert(http.post(self.url .. "/v3/oauth/token/generate",
      { key = key or _M.OAUTH_KEY, secret = secret or _M.OAUTH_SECRET }))
    local data = type(r.json) == "table" and r.json.data
    return type(data) == "table" and data.accessToken or nil, r
  end
  --- How many regular bills with this number the CRM holds (exactly-once checks).
  function sb.bills(self, number)
    local count = 0
    for _, t in ipairs(assert(self:state()).transactions) do
      if t.number == number and t.type == "REGULAR" then count = count + 1 end
    end
    return count
  end
  --- A CRM.COM participant's wallet balance, by participant number.
  function sb.crmcom_wallet(self, number)
    for _, p in ipairs(assert(self:crmcom_state()).participants) do
      if p.number == number then return p.wallet_balance end
    end
  end
  return sb
end

return _M

-- `loyalty call` against the sandbox: a typed operation and a raw METHOD PATH.
local support = require "support.sandbox"

local LUA = type(jit) == "table" and "luajit" or "lua5.4"

local function call(sb, args, env)
  local prefix = "LOYALTY_BASE_URL=" .. sb.url .. " LOYALTY_USERNAME=store.server LOYALTY_PASSWORD=server123 "
  local p = assert(io.popen(prefix .. (env or "") .. LUA .. " bin/loyalty call " .. args .. " 2>&1; echo rc=$?"))
  local out = p:read("*a")
  p:close()
  return out, tonumber(out:match("rc=(%d+)%s*$"))
end

describe("loyalty call", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)

  it("runs a typed operation and prints the normalised body and the request id", function()
    local out, rc = call(sb, "customer_get mobile=919999000001 points_summary=true")
    assert.equals(0, rc)
    assert.matches('"firstname":"Tom"', out, 1, true)
    assert.matches("request id: %x+", out)
  end)

  it("calls a raw v2 path", function()
    local out, rc = call(sb, "GET /v2/customers/lookup source=INSTORE identifierName=mobile "
                             .. "identifierValue=919999000001")
    assert.equals(0, rc)
    assert.matches('"entity":343445001', out, 1, true)
  end)

  it("reports CRM errors without the password, exiting 1", function()
    local out, rc = call(sb, "customer_get mobile=910000000000")
    assert.equals(1, rc)
    assert.matches("api error", out, 1, true)
    out, rc = call(sb, "customer_get mobile=919999000001", "LOYALTY_PASSWORD=wrong-secret-9 ")
    assert.equals(1, rc)
    assert.matches("auth error", out, 1, true)
    assert.not_matches("wrong%-secret%-9", out)
  end)

  it("an empty LOYALTY_PASSWORD counts as unset: OAuth works, Basic says what is missing (no hang)", function()
    local out, rc = call(sb, "customer_get mobile=919999000001",
                         "LOYALTY_USERNAME= LOYALTY_PASSWORD= LOYALTY_CLIENT_KEY=" .. support.OAUTH_KEY ..
                         " LOYALTY_CLIENT_SECRET=" .. support.OAUTH_SECRET .. " timeout 60 ")
    assert.equals(0, rc, out)
    assert.matches('"firstname":"Tom"', out, 1, true)
    out, rc = call(sb, "customer_get mobile=919999000001", "LOYALTY_PASSWORD= timeout 60 ")
    assert.equals(1, rc)
    assert.matches("config error", out, 1, true)
  end)

  it("refuses unknown operations with usage", function()
    local out, rc = call(sb, "no_such_op")
    assert.equals(2, rc)
    assert.matches("unknown operation", out, 1, true)
  end)
end)

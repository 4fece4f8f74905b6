-- The provider contract (loyalty.providers): every registered provider through the same checks.
-- The third provider of spec/providers/tiny/ is registered here too, so the checks are shown to
-- hold for a provider the library does not ship.
local providers = require "loyalty.providers"
local errors = require "loyalty.errors"
local schema = require "loyalty.schema"

providers.register("tiny", require "providers.tiny.provider")

-- Backend methods loyalty.program calls on every storefront.
local BACKEND = { "lookup", "point_rate", "check_redeemable", "redeem", "post_order", "post_return", "register",
                  "subscribe", "send_otp", "cancel_redemption", "reverse_redemption" }
local OUTBOX_KINDS = require("loyalty.outbox").KINDS

-- An operation's first argument for a profiled provider.
local function call_op(p, op, ...)
  if p.profile then return op(assert(p.profile {}), ...) end
  return op(...)
end

for _, name in ipairs(providers.names()) do
  describe("provider " .. name, function()
    local p = assert(providers.get(name))

    it("has the contract's shape", function()
      assert.equal(name, p.name)
      assert.is_string(p.title)
      for _, f in ipairs { "base_url", "interpret" } do assert.is_function(p[f], f) end
      assert.is_true(type(p.password_auth) == "function" or type(p.login) == "function"
                     or type(p.token_request) == "function", "some way to authenticate")
      assert.is_table(p.ops)
      assert.is_true(next(p.ops) ~= nil, "at least one operation")
      for k, f in pairs(p.batch_ops or {}) do assert.is_function(f, k) end
      assert.is_true(#p.REQUEST_ID_HEADERS >= 1)
      for _, h in ipairs(p.REQUEST_ID_HEADERS) do assert.equal(h:lower(), h) end
    end)

    it("names its hosts or says why not, as a config error", function()
      local url, err = p.base_url()
      if url then
        assert.matches("^https?://[^/]", url)
      else
        assert.is_true(errors.is_error(err))
        assert.equal("config", err.kind)
      end
    end)

    it("marks its token and login requests safe to retry", function()
      if p.token_request then
        local spec = p.token_request("key", "secret-123456")
        assert.is_true(spec.retry_safe)
        assert.is_string(spec.method)
        assert.is_string(spec.path)
      end
      if p.login then
        local login = p.login { username = "user", password = "secret-123456", organisation = "ORG",
                                api_key = nil }
        assert.is_true(login.spec.retry_safe)
        assert.is_string(login.key)
        assert.is_table(login.secrets)
      end
      if p.password_auth then
        local auth = p.password_auth("user", "secret-123456")
        assert.is_string(auth.value)
        assert.is_table(auth.secrets)
      end
    end)

    it("turns each operation into a request spec, or nil, err (never a raise) for empty input", function()
      for op_name, op in pairs(p.ops) do
        local ok, spec, err = pcall(call_op, p, op, {})
        if ok and spec then
          assert.is_string(spec.method, op_name)
          assert.is_string(spec.path, op_name)
          assert.matches("^/", spec.path, op_name)
        elseif ok then
          assert.is_true(errors.is_error(err), op_name .. ": nil without a loyalty error")
          assert.equal("config", err.kind, op_name)
        else
          -- a raise is a programmer error: only for arguments of the wrong type
          assert.matches("loyalty: ", tostring(spec), op_name)
        end
      end
    end)

    it("maps its documented error reply, an outage and a refused login to the one error shape", function()
      local sample = p.error_sample
      local r, err = p.interpret(sample.reply, sample.spec or {})
      assert.is_nil(r)
      assert.is_true(errors.is_error(err))
      assert.equal(sample.code, err.code)
      assert.is_string(err.kind)
      assert.is_true(errors.KINDS[err.kind])
      _, err = p.interpret({ status = 503 }, {})
      assert.is_true(errors.is_error(err))
      assert.equal(503, err.status)
      assert.is_true(err.retryable)
      _, err = p.interpret({ status = 401 }, {})
      assert.equal("auth", err.kind)
    end)

    it("has a storefront mapping with every verb the program calls", function()
      local sf = providers.part(p, "storefront")
      assert.is_function(sf.new)
      local backend = sf.new({ provider = p, profile = p.profile and p.profile {} }, { crm = {} })
      for _, m in ipairs(BACKEND) do assert.is_function(backend[m], m) end
      for _, f in ipairs { "check_settings", "limit_refusal", "already_reversed", "preview" } do
        assert.is_true(sf[f] == nil or type(sf[f]) == "function", f)
      end
    end)

    it("has an outbox replay policy over the program's entry kinds", function()
      local replay = providers.part(p, "replay")
      assert.is_table(replay.kinds)
      for kind, policy in pairs(replay.kinds) do
        assert.is_true(OUTBOX_KINDS[kind], kind .. " is not an outbox entry kind")
        assert.is_function(policy.request, kind)
        assert.is_true(policy.already == nil or type(policy.already) == "function", kind)
        assert.is_true(policy.lookup == nil or type(policy.lookup) == "function", kind)
      end
    end)

    it("declares its client options in schema form, none clashing with the client's own", function()
      local client = require "loyalty.client"
      local fields = client.option_fields(p)
      for k, f in pairs(p.config) do
        assert.equal(schema.field(f).type, schema.field(fields[k]).type, k)
      end
      assert.is_table(schema.check(p.config, {}, "t"))
    end)

    it("declares well-formed `loyalty call` options", function()
      assert.is_string(p.cli.credentials)
      local fields = require("loyalty.client").option_fields(p)
      for _, o in ipairs(p.cli.options) do
        assert.matches("^%-%-[a-z][a-z0-9%-]*$", o.flag)
        assert.is_string(o.help)
        if o.key then assert.is_not_nil(fields[o.key], o.flag .. " maps to no client option") end
      end
      for key in pairs(p.cli.env or {}) do assert.is_not_nil(fields[key], key) end
    end)
  end)
end

describe("the registry", function()
  it("refuses a provider of the wrong shape when it is registered", function()
    local tiny = require "providers.tiny.provider"
    local function without(field)
      local t = {}
      for k, v in pairs(tiny) do t[k] = v end
      t.name, t[field] = "broken", nil
      return t
    end
    for _, field in ipairs { "interpret", "ops", "REQUEST_ID_HEADERS", "config", "cli", "error_sample", "title" } do
      assert.has_error(function() providers.register("broken", without(field)) end, nil, field)
    end
    assert.has_error(function() providers.register("Not a name", tiny) end)
    assert.is_nil(providers.get("broken"))
  end)

  it("says which provider is unknown, as a config error", function()
    local p, err = providers.get("nosuch")
    assert.is_nil(p)
    assert.equal("config", err.kind)
    assert.equal("provider", err.key)
  end)

  it("gives settings and clients a default provider", function()
    assert.is_not_nil(providers.get(providers.DEFAULT))
  end)
end)

-- The secret scrubber: short and empty secrets ignored, no loops, scrub before the raw cut, and a
-- bounded list (configured secrets + the current and previous token).
local loyalty = require "loyalty"
local errors = require "loyalty.errors"
local core = require "loyalty.core"
local fake = require "support.fake_transport"

local OK_V2 = '{"entity": 1, "warnings": []}'

describe("secret scrubbing", function()
  it("ignores empty, short and non-string secrets and never loops", function()
    local s = "network error: connection refused"
    assert.equals(s, errors.scrub_string(s, { "", "o", "ne", "err", "nope", false }))
    assert.equals("x [REDACTED] y", errors.scrub_string("x abcdef y", { "abcdef" }))
    -- A secret that is part of the replacement text, or repeats itself, terminates.
    assert.equals("[REDACTED][REDACTED]", errors.scrub_string("REDACTREDACT", { "REDACT" }))
    assert.equals("[REDACTED]a", errors.scrub_string("aaaaaaa", { "aaaaaa" }))
    assert.equals(6, errors.MIN_SECRET)
  end)

  it("an empty password, client secret or token does not hang the client", function()
    for _, opts in ipairs {
      { username = "till", password = "" },
      { client_key = "k", client_secret = "" },
    } do
      opts.base_url, opts.sleep, opts.max_attempts = "http://crm.test", function() end, 1
      opts.transport = fake.new(function(req)
        if req.url:find("oauth", 1, true) then
          return { body = '{"data": {"accessToken": "tok-123456789", "ttlSeconds": 60}}' }
        end
        return { err = { kind = "network", message = "network error: connection refused" } }
      end)
      local c = assert(loyalty.client(opts))
      local _, err = c:v2_customer_lookup { mobile = "1" }
      assert.equals("network", err.kind)
      assert.matches("network error: connection refused", tostring(err), 1, true)
    end
  end)

  it("an empty accessToken is an auth error, not a secret", function()
    local c = assert(loyalty.client { base_url = "http://crm.test", client_key = "k-empty",
      client_secret = "secret-123",
      sleep = function() end, max_attempts = 1,
      transport = fake.new(function(req)
        if req.url:find("oauth", 1, true) then return { body = '{"data": {"accessToken": "", "ttlSeconds": 60}}' } end
        return { body = OK_V2 }
      end) })
    local r, err = c:v2_customer_lookup { mobile = "1" }
    assert.is_nil(r)
    assert.equals("auth", err.kind)
    assert.equals(0, #c.secrets - 1) -- only the client secret
  end)

  it("a 1-byte password does not mangle messages, its derived values are still scrubbed", function()
    local c = assert(loyalty.client { base_url = "http://crm.test", username = "u", password = "o",
      max_attempts = 1, transport = fake.new(function(req)
        local auth = fake.header(req, "Authorization")
        return { status = 200, body = "echo " .. auth .. " " .. core.md5_hex("o") .. " network" }
      end) })
    local _, err = c:customer_get { mobile = "1" }
    local text = tostring(err) .. err.raw
    assert.is_nil(text:find(core.md5_hex("o"), 1, true))
    assert.is_nil(text:find(core.basic_auth("u", "o"):sub(7), 1, true))
    assert.is_nil(text:find("[REDACTED]rk", 1, true))
  end)

  it("scrubs the whole reply text before cutting err.raw to 2 KB", function()
    local basic = core.basic_auth("store.server", "server123")
    for _, at in ipairs { 2000, 2030, 2047, 2048, 5000 } do
      local body = ("x"):rep(at) .. basic:sub(7) .. ("y"):rep(100)
      for _, headers in ipairs { false, true } do -- exchange (libcurl-less fake) and transport paths
        local c = assert(loyalty.client { base_url = "http://crm.test", username = "store.server",
          password = "server123", max_attempts = 1, transport = fake.new { { status = 200, body = body } } })
        local _, err = c:request { method = "GET", path = "/v2/x", headers = headers and { ["X-A"] = "1" } or nil }
        assert.equals("decode", err.kind)
        assert.is_true(#err.raw <= errors.RAW_CAP)
        -- No 8-byte piece of the credential survives anywhere in the kept text.
        local cred = basic:sub(7)
        for i = 1, #cred - 7 do assert.is_nil(err.raw:find(cred:sub(i, i + 7), 1, true), at .. ":" .. i) end
      end
    end
  end)

  it("keeps a bounded list: the configured secret and the current and previous token", function()
    local n = 0
    local c = assert(loyalty.client { base_url = "http://crm.test", client_key = "key", client_secret = "secret-123",
      sleep = function() end, transport = fake.new(function(req)
        if req.url:find("oauth", 1, true) then
          n = n + 1
          return { body = '{"data": {"accessToken": "token-number-' .. n .. '", "ttlSeconds": 0}}' }
        end
        return { body = OK_V2 }
      end) })
    for _ = 1, 200 do assert(c:v2_customer_lookup { mobile = "1" }) end
    assert.equals(200, n)
    assert.equals(3, #c.secrets)
    local set = {}
    for _, s in ipairs(c.secrets) do set[s] = true end
    assert.is_true(set["secret-123"] and set["token-number-200"] and set["token-number-199"])
  end)

  it("tostring never raises, whatever a reply put in the fields", function()
    for _, v in ipairs { {}, { 1, 2 }, core.null, true, 1.5, 0 / 0, math.huge, function() end } do
      local e = errors.new { kind = "api", code = v, status = v, message = v, request_id = v, attempts = v }
      assert.is_string(tostring(e))
    end
    local c = assert(loyalty.client { base_url = "http://crm.test", username = "u", password = "secret-1",
      max_attempts = 1, transport = fake.new(function()
        return { status = 400, body = '{"errors": [{"code": {"a": 1}, "message": {"text": [1]}}]}' }
      end) })
    local _, err = c:v2_customer_lookup { mobile = "1" }
    assert.is_string(tostring(err))
  end)
end)

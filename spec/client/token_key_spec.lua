-- The token cache key names the whole credential: key, a hash of the secret and the base URL.
-- A client with a wrong secret never reuses a good client's cached token.
local loyalty = require "loyalty"
local support = require "support.sandbox"
local token_store = require "loyalty.token_store"

describe("token cache key", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)

  local function client(secret, store, base)
    return assert(loyalty.client { base_url = base or sb.url, client_key = support.OAUTH_KEY, client_secret = secret,
                                   token_store = store, sleep = function() end, max_attempts = 1 })
  end

  it("a wrong secret fails at once, even with a good client's token in the shared store", function()
    local store = token_store.memory()
    local good = client(support.OAUTH_SECRET, store)
    assert(good:customer_get { mobile = support.TOM.mobile })
    local bad = client("not-the-secret", store)
    local r, err = bad:customer_get { mobile = support.TOM.mobile }
    assert.is_nil(r)
    assert.equals("auth", err.kind)
    assert.not_equals(good.token_key, bad.token_key)
    -- the good one still works from its own entry
    assert(good:customer_get { mobile = support.TOM.mobile })
    good:close()
    bad:close()
  end)

  it("keys differ by base URL and never hold the secret itself", function()
    local store = token_store.memory()
    local a = client(support.OAUTH_SECRET, store)
    local b = client(support.OAUTH_SECRET, store, "http://127.0.0.1:1")
    assert.not_equals(a.token_key, b.token_key)
    assert.is_nil(a.token_key:find(support.OAUTH_SECRET, 1, true))
    a:close()
    b:close()
  end)
end)

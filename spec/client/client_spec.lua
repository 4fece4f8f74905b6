-- The client against a scripted transport: headers, envelopes, errors, retries, OAuth.
local loyalty = require "loyalty"
local fake = require "support.fake_transport"
local token_store = require "loyalty.token_store"

local BASIC = "Basic c3RvcmUuc2VydmVyOjhhMTZhNmI3MDUwNWViMWYxZmY3Y2RjMGNkNTU1OWE3"

-- customer/get as documented (capillary.md §4.1, 2018 revision): strings where numbers are meant.
local CUSTOMER_GET = [[
{ "response": { "status": { "success": "true", "code": 200, "message": "Success", "total": "1", "success_count": "1" },
  "customers": { "customer": { "firstname": "Rati", "lastname": "Ranjan", "mobile": "19889999999",
      "email": "rati@example.com", "external_id": null, "lifetime_points": 442, "lifetime_purchases": "12338",
      "loyalty_points": "242", "current_slab": "SILVER", "user_id": "343445382",
      "points_summaries": { "points_summary": { "programId": "1016", "loyaltyPoints": "242", "redeemed": "100" } },
      "custom_fields": { "field": [] }, "extended_fields": { "field": { "name": "gender", "value": "Male" } },
      "transactions": { "transaction": [ { "id": "32650346", "number": "90384", "type": "REGULAR" } ] },
      "item_status": { "success": "true", "code": "1000", "message": "Customer successfully retrieved",
                       "warnings": { "warning": [ "91017", "1017" ] } } } } } }
]]

local NOT_FOUND = [[
{ "response": { "status": { "success": "false", "code": 500, "message": "All requests have failed due to errors",
  "total": "1", "success_count": "0" },
  "customers": { "customer": [ { "mobile": "919999999999",
      "item_status": { "success": "false", "code": "816", "message": "Customer not found for organization" } } ] } } }
]]

local function client_with(replies, extra)
  local t = fake.new(replies)
  local opts = { base_url = "http://crm.test", username = "store.server", password = "server123",
                 transport = t, sleep = function() end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local c = assert(loyalty.client(opts))
  return c, t
end

describe("loyalty.client", function()
  describe("configuration", function()
    it("raises on unknown options and wrong types", function()
      assert.has_error(function() loyalty.client { base_url = "http://x", bogus = 1 } end,
                       "loyalty.client: unknown option 'bogus'")
      assert.has_error(function() loyalty.client { base_url = 5 } end)
      assert.has_error(function() loyalty.client("x") end)
    end)

    it("reports missing credentials as a config error naming the key", function()
      local c, err = loyalty.client { base_url = "http://x", username = "till" }
      assert.is_nil(c)
      assert.equals("config", err.kind)
      assert.equals("password", err.key)
      c, err = loyalty.client { base_url = "http://x" }
      assert.is_nil(c)
      assert.equals("config", err.kind)
    end)

    it("refuses another provider's options as a config error", function()
      local c, err = loyalty.client { base_url = "http://x", username = "u", password = "p", organisation = "o",
                                      transport = fake.new() }
      assert.is_nil(c)
      assert.equals("organisation", err.key)
    end)

    it("resolves environment and cluster to a host, base_url overriding", function()
      local c = assert(loyalty.client { environment = "production", cluster = "eu", username = "u", password = "p",
                                        transport = fake.new() })
      assert.equals("https://eu.api.capillarytech.com", c.base_url)
      local _, err = loyalty.client { environment = "production", cluster = "mars", username = "u", password = "p",
                                      transport = fake.new() }
      assert.equals("cluster", err.key)
      c = assert(loyalty.client { base_url = "http://127.0.0.1:1/", cluster = "mars", username = "u",
                                  password = "p", transport = fake.new() })
      assert.equals("http://127.0.0.1:1", c.base_url)
    end)
  end)

  describe("requests", function()
    it("sends the documented Basic header, a User-Agent and attribution headers", function()
      local c, t = client_with({ { body = CUSTOMER_GET } },
                               { attribution = { entity_type = "STORE_CODE", entity_code = "s1" } })
      assert(c:customer_get { mobile = "19889999999", points_summary = true })
      local req = t.requests[1]
      assert.equals("GET", req.method)
      assert.equals(BASIC, fake.header(req, "Authorization"))
      assert.matches("^lua%-loyalty/", fake.header(req, "User-Agent"))
      assert.equals("STORE_CODE", fake.header(req, "X-CAP-API-ATTRIBUTION-ENTITY-TYPE"))
      assert.equals("s1", fake.header(req, "X-CAP-API-ATTRIBUTION-ENTITY-CODE"))
      assert.matches("/v1.1/customer/get?", req.url, 1, true)
      assert.matches("mobile=19889999999", req.url, 1, true)
      assert.matches("points_summary=true", req.url, 1, true)
    end)

    it("normalises the v1.1 envelope once: arrays, booleans, numbers, item_status", function()
      local c = client_with { { body = CUSTOMER_GET, headers = { ["x-cap-requestid"] = "5670FF17B7D58" } } }
      local r = assert(c:customer_get { mobile = "19889999999" })
      assert.equals("5670FF17B7D58", r.request_id)
      assert.equals(200, r.status)
      assert.is_true(r.body.status.success)
      assert.equals(1, r.body.status.success_count)
      local cu = r.customer
      assert.equals(242, cu.loyalty_points)
      assert.equals(12338, cu.lifetime_purchases)
      assert.equals(343445382, cu.user_id)
      assert.equals("19889999999", cu.mobile) -- identifiers stay strings
      assert.equals(1016, cu.points_summaries.points_summary[1].programId)
      assert.equals("gender", cu.extended_fields.field[1].name)
      assert.equals("90384", cu.transactions.transaction[1].number)
      assert.same({ 91017, 1017 }, r.warnings)
      assert.equals(1000, r.items[1].code)
      assert.is_true(r.items[1].success)
    end)

    it("turns an item failure into an api error with the provider code", function()
      local c = client_with { { body = NOT_FOUND, headers = { ["x-cap-requestid"] = "R1" } } }
      local r, err = c:customer_get { mobile = "919999999999" }
      assert.is_nil(r)
      assert.equals("api", err.kind)
      assert.equals(816, err.code)
      assert.equals("R1", err.request_id)
      assert.is_false(err.retryable)
      assert.matches("816", tostring(err))
      assert.matches("Customer not found", tostring(err))
    end)

    it("reports a batch partial success (code 201) as partial, keeping the failed items", function()
      local body = [[{ "response": { "status": { "success": "true", "code": 201, "message": "Some failed" },
        "customers": { "customer": [
          { "mobile": "1", "item_status": { "success": "true", "code": 1000, "message": "ok" } },
          { "mobile": "2", "item_status": { "success": "false", "code": 1001, "message": "invalid mobile" } } ] } } }]]
      local c = client_with { { body = body } }
      local r = assert(c:customer_add { { mobile = "1" }, { mobile = "2" } })
      assert.is_true(r.partial)
      assert.equals(2, #r.customers)
      assert.equals(1, #r.failed)
      assert.equals(1001, r.failed[1].code)
    end)

    it("wraps one object as a one-element list in v1.1 request bodies", function()
      local c, t = client_with { { body = CUSTOMER_GET } }
      assert(c:customer_update { mobile = "1", firstname = "A" })
      assert.matches('"customer":[{', t.requests[1].body, 1, true)
      assert.matches('"root":', t.requests[1].body, 1, true)
    end)

    it("reads v2 envelopes: createdId, warnings, points earned summed from sideEffects", function()
      local body = [[{ "createdId": 2147939409, "warnings": [], "errors": [],
        "sideEffects": [ { "entityType": "USER", "awardedPoints": 1700, "type": "points" },
                         { "awardedPoints": 30, "type": "points" },
                         { "id": 399000028, "couponCode": "KNRYHMRW", "type": "coupon" } ] }]]
      local c, t = client_with { { body = body } }
      local r = assert(c:v2_transaction_add({ type = "REGULAR", billNumber = "b1", billAmount = "200" },
                                            { source = "INSTORE", identifierName = "mobile", identifierValue = "9" }))
      assert.equals(2147939409, r.created_id)
      assert.equals(1730, r.points_earned)
      assert.equals("POST", t.requests[1].method)
      assert.matches("identifierName=mobile", t.requests[1].url, 1, true)
    end)

    it("turns v2 errors into api errors", function()
      local body = [[{ "errors": [ { "status": false, "code": 8015, "message": "No customer found" } ] }]]
      local c = client_with { { status = 400, body = body } }
      local r, err = c:v2_customer_lookup { source = "INSTORE", identifierName = "mobile", identifierValue = "1" }
      assert.is_nil(r)
      assert.equals("api", err.kind)
      assert.equals(8015, err.code)
      assert.equals(400, err.status)
    end)

    it("reports malformed and truncated JSON as decode errors keeping the raw body", function()
      local c = client_with({ { body = '{"response": {"status": ' } }, { max_attempts = 1 })
      local r, err = c:customer_get { mobile = "1" }
      assert.is_nil(r)
      assert.equals("decode", err.kind)
      assert.matches('{"response"', err.raw, 1, true)
    end)

    it("judges a non-JSON error page by its HTTP status", function()
      local c = client_with({ { status = 502, body = "<html>Bad Gateway</html>" } }, { max_attempts = 1 })
      local _, err = c:customer_get { mobile = "1" }
      assert.equals("http", err.kind)
      assert.equals(502, err.status)
      assert.is_true(err.retryable)
    end)

    it("refuses identifiers with CR/LF before any request is made", function()
      local c, t = client_with {}
      local r, err = c:customer_get { mobile = "1\r\nX-Evil: 1" }
      assert.is_nil(r)
      assert.equals("config", err.kind)
      assert.equals(0, #t.requests)
    end)

    it("raises on a wrong argument type (programmer error)", function()
      local c = client_with {}
      assert.has_error(function() c:customer_get("19889999999") end)
      assert.has_error(function() c:request { path = "/x" } end)
    end)
  end)

  describe("retries", function()
    local function slept_client(replies, extra)
      local sleeps = {}
      local opts = { sleep = function(s) sleeps[#sleeps + 1] = s end, random = function() return 1 end }
      for k, v in pairs(extra or {}) do opts[k] = v end
      local c, t = client_with(replies, opts)
      return c, t, sleeps
    end

    it("retries a GET on 503 and network errors with growing backoff", function()
      local c, t, sleeps = slept_client {
        { status = 503, body = "" },
        { err = { kind = "network", message = "Connection reset by peer", curl_code = 56 } },
        { body = CUSTOMER_GET },
      }
      local r = assert(c:customer_get { mobile = "1" })
      assert.equals(3, r.attempts)
      assert.equals(3, #t.requests)
      assert.equals(2, #sleeps)
      assert.is_true(sleeps[2] > sleeps[1])
    end)

    it("honours Retry-After on 429, capped", function()
      local c, _, sleeps = slept_client({
        { status = 429, headers = { ["retry-after"] = "3" }, body = "" },
        { status = 429, headers = { ["retry-after"] = "3600" }, body = "" },
        { body = CUSTOMER_GET },
      }, { retry_after_max_ms = 10000, timeout_ms = 60000 }) -- both waits fit the call's deadline
      assert(c:customer_get { mobile = "1" })
      assert.equals(3, sleeps[1])
      assert.equals(10, sleeps[2])
    end)

    it("gives up after max_attempts with the attempts counted", function()
      local c = slept_client({ { status = 500, body = "" }, { status = 500, body = "" } }, { max_attempts = 2 })
      local _, err = c:customer_get { mobile = "1" }
      assert.equals(2, err.attempts)
      assert.equals(500, err.status)
    end)

    it("never retries 4xx, TLS failures, or writes without an idempotency key", function()
      local c, t = slept_client { { status = 400, body = "" } }
      assert.is_nil(c:customer_get { mobile = "1" })
      assert.equals(1, #t.requests)
      c, t = slept_client { { err = { kind = "tls", message = "SSL certificate problem", curl_code = 60 } } }
      local _, err = c:customer_get { mobile = "1" }
      assert.equals("tls", err.kind)
      assert.equals(1, #t.requests)
      c, t = slept_client { { status = 503, body = "" } }
      assert.is_nil(c:customer_update { mobile = "1" })
      assert.equals(1, #t.requests)
    end)

    it("retries a redeem carrying external_reference_number", function()
      local ok = [[{ "response": { "status": { "success": "true", "code": 200, "message": "Success" },
        "responses": { "points": { "redemption_id": "7t4y2a", "points_redeemed": "100", "balance": 1990,
          "item_status": { "success": "true", "code": 800, "message": "Points Redeemed" } } } } }]]
      local c, t = slept_client { { status = 521, body = "" }, { body = ok } }
      local r = assert(c:points_redeem { points_redeemed = 100, customer = { mobile = "1" },
                                          external_reference_number = "order-1", validation_code = "X" })
      assert.equals("7t4y2a", r.redemption.redemption_id)
      assert.equals(100, r.redemption.points_redeemed)
      assert.equals(2, #t.requests)
    end)

    it("treats 604 on a retried transaction as already delivered", function()
      local dup = [[{ "response": { "status": { "success": "false", "code": 500, "message": "failed" },
        "transactions": { "transaction": [ { "number": "B1",
          "item_status": { "success": "false", "code": 604, "message": "Transaction number already exists" } } ] } } }]]
      local c, t = slept_client { { err = { kind = "timeout", message = "Operation timed out", curl_code = 28 } },
                                  { body = dup } }
      local r = assert(c:transaction_add { type = "regular", number = "B1", amount = 100, customer = { mobile = "1" } })
      assert.is_true(r.duplicate)
      assert.equals(2, #t.requests)
    end)
  end)

  describe("OAuth", function()
    local TOKEN = '{"data":{"accessToken":"tok-%d","ttlSeconds":300},"errors":null}'

    local function oauth_client(extra)
      local now, issued = 1000, 0
      local t = fake.new(function(req)
        if req.url:find("/v3/oauth/token/generate", 1, true) then
          issued = issued + 1
          return { body = TOKEN:format(issued) }
        end
        local tok = fake.header(req, "X-CAP-API-OAUTH-TOKEN") or fake.header(req, "CAP-API-ACCESS-TOKEN")
        if tok == "tok-revoked" then return { status = 401, body = "" } end
        return { body = CUSTOMER_GET }
      end)
      local opts = { base_url = "http://crm.test", client_key = "key1", client_secret = "s3cr3t-value",
                     transport = t, token_store = token_store.private(), clock = function() return now end,
                     sleep = function() end }
      for k, v in pairs(extra or {}) do opts[k] = v end
      local c = assert(loyalty.client(opts))
      return c, t, function(dt) now = now + dt end, function() return issued end
    end

    it("fetches one token for many calls and sends it in the configured header", function()
      local c, t, _, issued = oauth_client()
      for _ = 1, 5 do assert(c:customer_get { mobile = "1" }) end
      assert.equals(1, issued())
      assert.equals("tok-1", fake.header(t.requests[2], "X-CAP-API-OAUTH-TOKEN"))
      local body = t.requests[1].body
      assert.matches('"key":"key1"', body, 1, true)
    end)

    it("tells the log about each token refresh, never the token", function()
      local events = {}
      local c, _, advance = oauth_client { log = function(level, event, fields)
        events[#events + 1] = { level, event, fields }
      end }
      assert(c:customer_get { mobile = "1" })
      advance(290)
      assert(c:customer_get { mobile = "1" })
      local refreshes = {}
      for _, e in ipairs(events) do
        if e[2] == "token_refresh" then refreshes[#refreshes + 1] = e end
        for _, v in pairs(e[3]) do assert.is_nil(tostring(v):find("tok-", 1, true)) end
      end
      assert.equals(2, #refreshes)
      assert.equals("info", refreshes[1][1])
      assert.is_number(refreshes[1][3].ttl_s)
    end)

    it("refreshes before ttlSeconds runs out", function()
      local c, _, advance, issued = oauth_client()
      assert(c:customer_get { mobile = "1" })
      advance(260)
      assert(c:customer_get { mobile = "1" })
      assert.equals(1, issued())
      advance(20) -- inside the skew margin
      assert(c:customer_get { mobile = "1" })
      assert.equals(2, issued())
    end)

    it("regenerates once on 401 and replays the call", function()
      local c, t, _, issued = oauth_client { token_header = "CAP-API-ACCESS-TOKEN" }
      assert(c:customer_get { mobile = "1" })
      c.token_store:set(c.token_key, "tok-revoked", 10 ^ 9)
      local r = assert(c:customer_get { mobile = "1" })
      assert.equals(2, issued())
      assert.equals(200, r.status)
      assert.equals("tok-2", fake.header(t.requests[#t.requests], "CAP-API-ACCESS-TOKEN"))
    end)

    it("never shows the secret or the token in an error", function()
      local t = fake.new { { status = 400, body = '{"errors":[{"code":1,"message":"bad secret s3cr3t-value"}]}' } }
      local c = assert(loyalty.client { base_url = "http://crm.test", client_key = "k", client_secret = "s3cr3t-value",
                                        transport = t, token_store = token_store.private(), sleep = function() end })
      local _, err = c:customer_get { mobile = "1" }
      assert.not_matches("s3cr3t", tostring(err))
      assert.not_matches("s3cr3t", err.message)
    end)
  end)

  it("closes its transport once", function()
    local c, t = client_with {}
    c:close()
    c:close()
    assert.equals(1, t.closed)
  end)
end)

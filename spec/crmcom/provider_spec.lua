-- The CRM.COM provider against a scripted transport: login, where the token goes, the envelope,
-- re-login, typed views and the products/synchronise plan.
local loyalty = require "loyalty"
local core = require "loyalty.core"
local fake = require "support.fake_transport"
local token_store = require "loyalty.token_store"
local crmcom = require "loyalty.providers.crmcom"

local function reply(data, code, message)
  return { status = 200, body = core.json_encode { status = { code = code or "OK", message = message or core.null,
                                                               description = core.null }, data = data or core.null } }
end

local function body_of(req) return core.json_decode(req.body) end

local function client_with(replies, extra)
  local t = fake.new(replies)
  local opts = { provider = "crmcom", base_url = "http://crm.test/crmapi/rest/v2", username = "pos.user",
                 password = "pos123", organisation = "SANDBOXORG", transport = t, sleep = function() end,
                 token_store = token_store.private() }
  for k, v in pairs(extra or {}) do opts[k] = v or nil end -- false: leave the option out
  return assert(loyalty.client(opts)), t
end

describe("crmcom provider", function()
  it("logs in with username, password, organisation and unit, then sends the token as a parameter", function()
    local c, t = client_with({ reply { token = "TOK1" }, reply { number = "29" }, reply { total_award_amount = 1 } },
                             { unit = "U1" })
    local r = assert(c:participant_show { number = "29" })
    assert.equals("29", r.participant.number)
    local login = t.requests[1]
    assert.equals("POST", login.method)
    assert.equals("http://crm.test/crmapi/rest/v2/authentication/token", login.url)
    assert.same({ username = "pos.user", password = "pos123", organisation = "SANDBOXORG", unit = "U1" },
                body_of(login))
    -- R5+: show is POST with the token and the identifier in the JSON body, nothing in the URL
    local show = t.requests[2]
    assert.equals("POST", show.method)
    assert.equals("http://crm.test/crmapi/rest/v2/rewards_participants/show", show.url)
    assert.same({ token = "TOK1", rewards_participant_identifier = { number = "29" } }, body_of(show))
    assert.equals("application/json", fake.header(show, "Content-Type"))
    -- R17 (the default): events name the accounts receivable; the login is reused
    assert(c:purchase_preview { participant = { account = "ACR29" }, lines = { { code = "A", total = 10 } } })
    local preview = body_of(t.requests[3])
    assert.equals("TOK1", preview.token)
    assert.same({ number = "ACR29" }, preview.accounts_receivable_identifier)
    assert.is_nil(preview.rewards_participant_identifier)
    assert.equals(3, #t.requests)
  end)

  it("logs in with a Web API key as Basic username with an empty password", function()
    local c, t = client_with({ reply { token = "K" }, reply { number = "1" } },
                             { username = false, password = false, organisation = false, api_key = "ABCDEF0123" })
    assert(c:participant_show { id = "X" })
    assert.equals("http://crm.test/crmapi/rest/v2/authentication/web_api_key/token", t.requests[1].url)
    assert.equals("Basic " .. core.base64("ABCDEF0123:"), fake.header(t.requests[1], "Authorization"))
  end)

  it("refuses incomplete or foreign credentials as config errors naming the key", function()
    local _, err = loyalty.client { provider = "crmcom", base_url = "http://x", username = "u", password = "p" }
    assert.equals("config", err.kind)
    assert.equals("organisation", err.key)
    _, err = loyalty.client { provider = "crmcom", base_url = "http://x", client_key = "k", client_secret = "s" }
    assert.equals("client_key", err.key)
    _, err = loyalty.client { provider = "crmcom", environment = "production", username = "u", password = "p",
                              organisation = "o" }
    assert.equals("base_url", err.key)
  end)

  it("turns any status other than OK into an api error with code and message", function()
    local c = client_with { reply { token = "TOKEN-0001" }, reply(nil, "NOT_FOUND", "Rewards participant not found") }
    local r, err = c:participant_show { number = "404" }
    assert.is_nil(r)
    assert.equals("api", err.kind)
    assert.equals("NOT_FOUND", err.code)
    assert.equals("Rewards participant not found", err.message)
    assert.is_false(err.retryable)
  end)

  it("reports a reply without the envelope as a decode error, and 5xx pages as retryable http errors", function()
    local c = client_with({ reply { token = "TOKEN-0001" }, { status = 200, body = '{"hello": 1}' },
                            { status = 200, body = '{"hello": 1}' },
                            { status = 503, body = "<html>busy</html>" },
                            { status = 503, body = "<html>busy</html>" } },
                          { max_attempts = 2 })
    local _, err = c:participant_show { number = "1" }
    assert.equals("decode", err.kind)
    assert.equals(2, err.attempts)
    _, err = c:participant_show { number = "1" }
    assert.equals("http", err.kind)
    assert.equals(503, err.status)
    assert.equals(2, err.attempts)
  end)

  it("a refused login is an auth error and the password never appears in it", function()
    local c = client_with { reply(nil, "AUTHENTICATION_FAILED", "bad login for pos123") }
    local _, err = c:participant_show { number = "1" }
    assert.equals("auth", err.kind)
    assert.is_nil(tostring(err):find("pos123", 1, true))
  end)

  it("renews a rejected token once and replays; a second rejection is returned", function()
    local c, t = client_with {
      reply { token = "OLD" }, reply(nil, "INVALID_TOKEN", "expired"), reply { token = "NEW" }, reply { number = "7" },
    }
    local r = assert(c:participant_show { number = "7" })
    assert.equals("7", r.participant.number)
    assert.equals("NEW", body_of(t.requests[4]).token)
    local c2, t2 = client_with {
      reply { token = "TOKEN-A" }, reply(nil, "INVALID_TOKEN", "no"),
      reply { token = "TOKEN-B" }, reply(nil, "INVALID_TOKEN", "no"),
    }
    local _, err = c2:participant_show { number = "7" }
    assert.equals("auth", err.kind)
    assert.is_true(err.token_rejected)
    assert.equals(4, #t2.requests) -- one renewal, no loop
  end)

  it("logs in again once the two hours are over", function()
    local now = 1000000
    local c, t = client_with({ reply { token = "T1" }, reply { number = "1" }, reply { number = "1" },
                               reply { token = "T2" }, reply { number = "1" } }, { clock = function() return now end })
    assert(c:participant_show { number = "1" })
    now = now + 3600
    assert(c:participant_show { number = "1" })
    now = now + 3600 + 1
    assert(c:participant_show { number = "1" })
    assert.equals("http://crm.test/crmapi/rest/v2/authentication/token", t.requests[4].url)
    assert.equals("T2", body_of(t.requests[5]).token)
  end)

  it("one login serves clients sharing a token store; the refresh takes the store's lock", function()
    local store = token_store.private()
    local locks = 0
    local lock = store.lock
    store.lock = function(...) locks = locks + 1 return lock(...) end
    local a, ta = client_with({ reply { token = "S" }, reply { number = "1" } }, { token_store = store })
    local b, tb = client_with({ reply { number = "2" } }, { token_store = store })
    assert(a:participant_show { number = "1" })
    assert(b:participant_show { number = "2" })
    assert.equals(2, #ta.requests)
    assert.equals(1, #tb.requests)
    assert.equals("S", body_of(tb.requests[1]).token)
    assert.equals(1, locks)
  end)

  it("sends fields_set and pagination where documented", function()
    local c, t = client_with { reply { token = "TOKEN-0001" }, reply { { number = "CE1" }, { number = "CE2" } } }
    local r = assert(c:purchases_list { participant = { account = "9" }, number_of_results = 2, offset = 4,
                                        fields_set = { "number", "total_amount" } })
    local b = body_of(t.requests[2])
    assert.equals(2, b.number_of_results)
    assert.equals(4, b.offset)
    assert.equals("number,total_amount", b.fields_set)
    assert.equals(2, #r.purchases)
    assert.equals("CE2", r.purchases[2].number)
  end)

  it("reads the preview figures and the offer within the limits", function()
    local v = crmcom.preview_view { total_award_amount = 0.75, total_additional_spend_amount = 80,
                                    minimum_spend_amount_per_transaction = 1, maximum_spend_amount_per_transaction = 50,
                                    wallet_balance = 80, reduction_method = "FRONT_END_REDUCTION" }
    assert.equals(0.75, v.award)
    assert.equals(50, v.offer)
    assert.equals(0, crmcom.preview_view { total_additional_spend_amount = 0.5,
                                           minimum_spend_amount_per_transaction = 1 }.offer)
    assert.equals(0, crmcom.preview_view { total_additional_spend_amount = 5, allow_spending = false }.offer)
  end)

  it("computes the amount to collect by reduction method", function()
    local p = { total = 24.76, spent = 0 }
    assert.equals(14.76, crmcom.amount_to_collect(p, { { actual = 10 } }).due)
    local back = crmcom.amount_to_collect(p, { { actual = 10 } }, "BACK_END_REDUCTION")
    assert.equals(24.76, back.due)
    assert.equals(10, back.credited_later)
  end)

  it("reads requested vs actual spend", function()
    local c = client_with { reply { token = "TOKEN-0001" },
      reply { number = "SR1", spend_amount = 80, spend_reward_transaction = { amount = 50 } } }
    local r = assert(c:spend_request_create { participant = { email = "a@b.c" }, purchase = { number = "CE1" },
                                              amount = 80 })
    assert.equals(80, r.spend.requested)
    assert.equals(50, r.spend.actual)
  end)

  it("plans products/synchronise in calls of at most 1,000 products", function()
    local products = {}
    for i = 1, 2500 do products[i] = { code = "P" .. i } end
    local plan = assert(crmcom.batch_ops.products_synchronise(nil, products, { max_in_flight = 3,
                                                              definition = { name = "PRODUCTS" } }))
    assert.same({ name = "PRODUCTS" }, plan.specs[1].json.synchronisation_definition_identifier)
    assert.equals(3, #plan.specs)
    assert.equals(1000, #plan.specs[1].json.products_set)
    assert.equals(500, #plan.specs[3].json.products_set)
    assert.equals("P2001", plan.specs[3].json.products_set[1].code)
    assert.equals(3, plan.max_in_flight)
    local _, err = crmcom.batch_ops.products_synchronise(nil, products, { batch_size = 1001 })
    assert.equals("config", err.kind)
    -- R17+ (the default) needs the synchronisation definition; R16 sends none unless given
    _, err = crmcom.batch_ops.products_synchronise(nil, products, {})
    assert.equals("definition", err.key)
    plan = assert(crmcom.batch_ops.products_synchronise(assert(crmcom.profile { release = "R16" }), products, {}))
    assert.is_nil(plan.specs[1].json.synchronisation_definition_identifier)
  end)

  it("synchronises through a custom transport one call at a time, reporting every batch", function()
    local c, t = client_with {
      reply { token = "TOKEN-0001" },
      reply { processed_products_set = { { request_code = "A", id = "1", code = "A" } },
              unprocessed_products_set = { { request_code = "B", error_code = "INVALID_CODE" } } },
      reply(nil, "ERROR", "definition unknown"),
    }
    c.profile = assert(crmcom.profile { release = "R17", sync_definition = { id = "D1" } })
    local r = assert(c:products_synchronise({ { code = "A" }, { code = "B" }, { code = "C" } }, { batch_size = 2 }))
    assert.equals(2, r.calls)
    assert.equals(1, #r.processed)
    assert.equals("INVALID_CODE", r.unprocessed[1].error_code)
    assert.equals(1, #r.failed_batches)
    assert.equals(3, r.failed_batches[1].first)
    assert.equals("definition unknown", r.failed_batches[1].err.message)
    assert.is_true(r.partial)
    assert.equals(3, #t.requests)
  end)

  describe("releases", function()
    it("refuses a release it cannot name and a malformed sync definition", function()
      for _, bad in ipairs { "17", "R3", "seventeen", "R17-beta" } do
        local _, err = loyalty.client { provider = "crmcom", base_url = "http://x", username = "u", password = "p",
                                        organisation = "o", release = bad }
        if bad == "17" then assert.is_truthy(_) else assert.equals("release", err.key) end
      end
      local _, err = loyalty.client { provider = "crmcom", base_url = "http://x", username = "u", password = "p",
                                      organisation = "o", sync_definition = { name = "A", id = "B" } }
      assert.equals("sync_definition", err.key)
      _, err = loyalty.client { base_url = "http://x", username = "u", password = "p", release = "R17" }
      assert.equals("release", err.key) -- a CRM.COM option on Capillary
    end)

    it("R4 sends show as GET with the flattened identifier; access tokens need R5", function()
      local c, t = client_with({ reply { token = "T4" }, reply { number = "29" } }, { release = "R4.0.0" })
      assert(c:participant_show { number = "29" })
      assert.equals("GET", t.requests[2].method)
      assert.matches("rewards_participant_identifier=number%3D29", t.requests[2].url, 1, true)
      assert.matches("token=T4", t.requests[2].url, 1, true)
      local _, err = c:participant_show { card = "C1" }
      assert.equals("config", err.kind)
    end)

    it("before R17 events name the participant; from R17 the accounts receivable", function()
      local lines = { { total = 10, vat = 0 } }
      local c, t = client_with({ reply { token = "T" }, reply { number = "CE1" }, reply { number = "CE2" } },
                               { release = "R16.2" })
      assert(c:purchase_create { participant = { external_id = "RP9" }, lines = lines, reference = "R1" })
      local b = body_of(t.requests[2])
      assert.same({ number = "RP9" }, b.rewards_participant_identifier)
      assert.is_nil(b.accounts_receivable_identifier)
      assert(c:purchase_create { participant = { mobile = "357" }, lines = lines, reference = "R2" })
      assert.same({ access_token_identifier = { authentication_code = "357" } },
                  body_of(t.requests[3]).accounts_receivable_identifier)

      c, t = client_with({ reply { token = "T" }, reply { number = "CE1" } })
      assert(c:purchase_create { participant = { external_id = "ACR9" }, lines = lines, reference = "R1" })
      b = body_of(t.requests[2])
      assert.same({ number = "ACR9" }, b.accounts_receivable_identifier)
      assert.is_nil(b.rewards_participant_identifier)
      local _, err = c:spend_request_create { participant = { id = "X" }, purchase = { number = "CE1" } }
      assert.equals("config", err.kind)
      assert.equals("id", err.key)
      _, err = c:participant_show { account = "ACR9" }
      assert.equals("account", err.key)
      assert.equals(2, #t.requests) -- refused before sending
    end)

    it("sends zone-less local dates", function()
      local c, t = client_with { reply { token = "T" }, reply { number = "CE1" }, reply { number = "CE2" } }
      assert(c:purchase_create { participant = { account = "A" }, lines = { { total = 1 } }, reference = "D1" })
      local sent = body_of(t.requests[2]).performed_on
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d$", sent)
      local at = os.time { year = 2026, month = 12, day = 1, hour = 10, min = 5, sec = 9 } -- local time
      assert(c:purchase_create { participant = { account = "A" }, lines = { { total = 1 } }, reference = "D2",
                                 performed_on = at })
      assert.equals("2026-12-01T10:05:09", body_of(t.requests[3]).performed_on)
    end)
  end)

  describe("errors by HTTP status", function()
    local function envelope(status, code, message)
      return { status = status, body = core.json_encode { status = { code = code, message = message,
                                                                     description = core.null }, data = core.null } }
    end

    it("404 with the envelope is not found, whatever the code", function()
      local c = client_with { reply { token = "T" }, envelope(404, "E1234", "no such participant") }
      local _, err = c:participant_show { number = "1" }
      assert.equals("api", err.kind)
      assert.equals(404, err.status)
      assert.is_true(err.not_found)
    end)

    it("401 renews the token once and replays, whatever the code", function()
      local c, t = client_with { reply { token = "OLD" }, envelope(401, "E9", "session expired"),
                                 reply { token = "NEW" }, reply { number = "1" } }
      assert(c:participant_show { number = "1" })
      assert.equals("NEW", body_of(t.requests[4]).token)
    end)

    it("a 401 login is an auth failure, not a token to renew", function()
      local c, t = client_with { envelope(401, "E1", "wrong password") }
      local _, err = c:participant_show { number = "1" }
      assert.equals("auth", err.kind)
      assert.is_nil(err.token_rejected)
      assert.equals(1, #t.requests)
    end)

    it("an unknown code under HTTP 200 stays an api error without not_found", function()
      local c = client_with { reply { token = "T" }, reply(nil, "E77", "refused") }
      local _, err = c:participant_show { number = "1" }
      assert.equals("api", err.kind)
      assert.is_nil(err.not_found)
    end)
  end)
end)

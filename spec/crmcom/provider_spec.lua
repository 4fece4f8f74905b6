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
    -- GET: token and the flattened identifier in the query string
    local show = t.requests[2]
    assert.equals("GET", show.method)
    assert.matches("token=TOK1", show.url, 1, true)
    assert.matches("rewards_participant_identifier=number%3D29", show.url, 1, true)
    -- POST: token as a top-level body field; the login is reused
    assert(c:purchase_preview { participant = { number = "29" }, lines = { { code = "A", total = 10 } } })
    local preview = body_of(t.requests[3])
    assert.equals("TOK1", preview.token)
    assert.same({ number = "29" }, preview.rewards_participant_identifier)
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
    assert.matches("token=NEW", t.requests[4].url, 1, true)
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
    assert.matches("token=T2", t.requests[5].url, 1, true)
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
    assert.matches("token=S", tb.requests[1].url, 1, true)
    assert.equals(1, locks)
  end)

  it("sends fields_set and pagination where documented", function()
    local c, t = client_with { reply { token = "TOKEN-0001" }, reply { { number = "CE1" }, { number = "CE2" } } }
    local r = assert(c:purchases_list { participant = { number = "9" }, number_of_results = 2, offset = 4,
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
    local r = assert(c:spend_request_create { participant = { number = "9" }, purchase = { number = "CE1" },
                                              amount = 80 })
    assert.equals(80, r.spend.requested)
    assert.equals(50, r.spend.actual)
  end)

  it("plans products/synchronise in calls of at most 1,000 products", function()
    local products = {}
    for i = 1, 2500 do products[i] = { code = "P" .. i } end
    local plan = assert(crmcom.batch_ops.products_synchronise(products, { max_in_flight = 3 }))
    assert.equals(3, #plan.specs)
    assert.equals(1000, #plan.specs[1].json.products_set)
    assert.equals(500, #plan.specs[3].json.products_set)
    assert.equals("P2001", plan.specs[3].json.products_set[1].code)
    assert.equals(3, plan.max_in_flight)
    local _, err = crmcom.batch_ops.products_synchronise(products, { batch_size = 1001 })
    assert.equals("config", err.kind)
  end)

  it("synchronises through a custom transport one call at a time, reporting every batch", function()
    local c, t = client_with {
      reply { token = "TOKEN-0001" },
      reply { processed_products_set = { { request_code = "A", id = "1", code = "A" } },
              unprocessed_products_set = { { request_code = "B", error_code = "INVALID_CODE" } } },
      reply(nil, "ERROR", "definition unknown"),
    }
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
end)

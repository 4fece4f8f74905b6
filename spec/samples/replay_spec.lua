-- The suite's check against the real APIs, not against our sandbox: the providers' documented
-- reply samples (spec/samples/*/*.http, each naming its source) served verbatim by a tiny local
-- server, the typed operations run against them, and the requests the client sends compared with
-- the documented method, path, query, body and headers.
local loyalty = require "loyalty"
local core = require "loyalty.core"
local token_store = require "loyalty.token_store"
local samples = require "samples.samples"

local function decode(s) return core.json_decode(s) end
local function request_sample(file) return decode(samples.read(file).body) end

-- The documented Basic worked example (S-V2 index: store.server / server123).
local DOC_BASIC = "Basic c3RvcmUuc2VydmVyOjhhMTZhNmI3MDUwNWViMWYxZmY3Y2RjMGNkNTU1OWE3"

describe("documented samples", function()
  local srv

  lazy_setup(function()
    srv = samples.start {
      { "GET", "/cap/v1.1/customer/get", "capillary/v11_customer_get_no_root.http" },
      { "POST", "/cap/v1.1/coupon/redeem", "capillary/v11_coupon_redeem_no_root.http" },
      { "GET", "/cap/v1.1/coupon/isredeemable", "capillary/v11_coupon_isredeemable.http" },
      { "GET", "/cap/v1.1/customer/transactions", "capillary/v11_customer_transactions.http" },
      { "GET", "/cap/v1.1/points/isredeemable", "capillary/v11_points_isredeemable.http" },
      { "GET", "/gzip/v1.1/points/isredeemable", "capillary/v11_points_isredeemable_gzip.http" },
      { "POST", "/cap/v1.1/points/redeem", "capillary/v11_points_redeem.http" },
      { "GET", "/cap/v1.1/points/validationcode", "capillary/v11_points_validationcode.http" },
      { "POST", "/cap/v2/otp/validate", "capillary/v2_otp_validate_ok.http" },
      { "POST", "/wrong/v2/otp/validate", "capillary/v2_otp_validate_wrong.http" },
      { "POST", "/cap/v2/points/reverse", "capillary/v2_points_reverse.http" },
      { "POST", "/cap/v1.1/transaction/add", "capillary/v11_transaction_add.http" },
      { "POST", "/cap/v1.1/customer/subscriptions", "capillary/v11_subscriptions_200_some_failed.http" },
      { "POST", "/crm/authentication/token", "crmcom/authentication_token.http" },
      { "POST", "/crm/rewards_participants/show", "crmcom/rewards_participants_show.http" },
      { "GET", "/crm/rewards_participants/show", "crmcom/rewards_participants_show.http" },
    }
  end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("every sample file names its source", function()
    for _, dir in ipairs { "capillary", "crmcom" } do
      local p = assert(io.popen("ls " .. samples.DIR .. dir))
      for file in p:lines() do
        local s = samples.read(dir .. "/" .. file)
        assert.is_string(s.source, file)
        -- a repository, a docs page, the CRM.COM wiki, or an explicit CONSTRUCTED
        assert.is_truthy(s.source:find("GitHub", 1, true) or s.source:find("docs.capillarytech.com", 1, true)
                         or s.source:find("CRM.COM", 1, true) or s.source:find("^CONSTRUCTED"), file)
        if not file:find("%.xml%.http$") then
          assert.is_truthy(decode(s.body), file .. " is not the JSON the docs print")
        end
      end
      p:close()
    end
  end)

  describe("Capillary", function()
    local function client(prefix)
      return assert(loyalty.client { base_url = srv.url .. "/" .. (prefix or "cap"), username = "store.server",
                                     password = "server123", sleep = function() end, max_attempts = 1 })
    end

    local function assert_headers(req)
      assert.equals(DOC_BASIC, req.headers.authorization)
      assert.equals("application/json", req.headers.accept)
      assert.equals("application/json", req.headers["content-type"]) -- on GETs too [DOC seed 002, S-V11]
    end

    it("customer/get: the current sample without the response root parses", function()
      local r = assert(client():customer_get { mobile = "91900000000" })
      local c = r.customer
      assert.equals("Tom", c.firstname)
      assert.equals(500, c.loyalty_points)       -- "500" in the sample
      assert.equals(2300, c.lifetime_points)
      assert.equals("gender", c.custom_fields.field[1].name) -- one object in the sample
      assert.equals(2, #c.coupons)
      assert.same({}, r.warnings)
      local req = srv:last()
      assert.equals("GET", req.method)
      assert.equals("/cap/v1.1/customer/get", req.path)
      assert.same({ mobile = "91900000000", format = "json" }, samples.query(req.query))
      assert.equals("", req.body)
      assert_headers(req)
    end)

    it("coupon/redeem: sends the documented request, reads the reply without the response root", function()
      local doc = request_sample("capillary/v11_coupon_redeem.request.http")
      local r = assert(client():coupon_redeem(doc.root.coupon[1]))
      assert.equals("4577842", r.coupon.redemptionId)
      assert.equals(10, r.coupon.coupon_value)
      assert.equals(700, r.items[1].code)
      local req = srv:last()
      assert.equals("POST", req.method)
      assert.equals("/cap/v1.1/coupon/redeem", req.path)
      assert.same({ format = "json" }, samples.query(req.query))
      assert.same(doc, decode(req.body))
      assert_headers(req)
    end)

    it("coupon/isredeemable: item_status.status and a false is_redeemable are an answer, not an error", function()
      local r = assert(client():coupon_isredeemable { mobile = "447700900000", code = "06000041", details = "true" })
      assert.is_false(r.redeemable.is_redeemable)
      assert.equals(706, r.redeemable.item_status.code)
      assert.same({ mobile = "447700900000", code = "06000041", details = "true", format = "json" },
                  samples.query(srv:last().query))
    end)

    it("customer/transactions: count is a number, start the first id, rows the page size", function()
      local r = assert(client():customer_transactions { mobile = "44700900000", custom_fields = true, limit = 10 })
      assert.equals(51, r.count)
      assert.equals("321260040", r.start)
      assert.equals(r.transactions[1].id, r.start)
      assert.equals(10, r.rows)
      assert.equals(2, #r.transactions)
      assert.equals("200", r.transactions[1].points.issued)
      assert.same({ mobile = "44700900000", custom_fields = "true", limit = "10", format = "json" },
                  samples.query(srv:last().query))
    end)

    it("points/isredeemable: program_id is sent (mandatory in the current docs) and the clean reply reads", function()
      local c = client()
      local before = #srv:requests()
      local _, err = c:points_isredeemable { mobile = "919777785205", points = 10 }
      assert.equals("config", err.kind)
      assert.equals("program_id", err.key)
      assert.equals(before, #srv:requests()) -- refused before sending
      local r = assert(c:points_isredeemable { mobile = "919777785205", points = 10, program_id = 1016 })
      assert.is_true(r.redeemable.is_redeemable)
      assert.equals(10, r.redeemable.points_redeem_value)
      assert.same({ mobile = "919777785205", points = "10", program_id = "1016", format = "json" },
                  samples.query(srv:last().query))
      assert_headers(srv:last())
    end)

    it("the documented reply headers: gzip, chunked, X-Cap-Requestid on the result", function()
      local r = assert(client("gzip"):points_isredeemable { mobile = "919777785205", points = 10, program_id = 1 })
      assert.is_true(r.redeemable.is_redeemable)
      assert.equals("5670FF17B7D58", r.request_id)
    end)

    it("points/redeem: the documented request and the documented reply", function()
      local doc = request_sample("capillary/v11_points_redeem.request.http")
      local r = assert(client():points_redeem(doc.root.redeem[1]))
      assert.equals("7t4y2a", r.redemption.redemption_id)
      assert.equals(1990, r.redemption.balance)
      assert.equals(1, r.redemption.points_redeemed)
      local req = srv:last()
      assert.same(doc, decode(req.body))
      assert.equals("/cap/v1.1/points/redeem", req.path)
    end)

    it("points/validationcode: string codes read as numbers", function()
      local r = assert(client():points_validation_code { mobile = "44700900999", points = 50 })
      assert.equals(55456, r.validation.user_id)
      assert.equals(200, r.items[1].code)
    end)

    it("v2 otp/validate: the documented request; a wrong code is valid=false, not an error", function()
      local doc = request_sample("capillary/v2_otp_validate.request.http")
      local ok = assert(client():v2_otp_validate(doc))
      assert.is_true(ok.valid)
      assert.same(doc, decode(srv:last().body))
      assert.equals("/cap/v2/otp/validate", srv:last().path)
      local wrong = assert(client("wrong"):v2_otp_validate(doc))
      assert.is_false(wrong.valid)
    end)

    it("transaction/add: the documented request; the documented reply has no points side effect", function()
      local doc = request_sample("capillary/v11_transaction_add.request.http")
      local r = assert(client():transaction_add(doc.root.transaction[1]))
      assert.equals(37813251, r.transaction.id)
      assert.equals(106, r.customer.loyalty_points) -- the balance after the bill
      assert.is_nil(r.points_earned)                 -- not documented in this reply: unknown, not 0
      assert.equals("coupon", r.transaction.side_effects.effect[1].type)
      local req = srv:last()
      assert.equals("/cap/v1.1/transaction/add", req.path)
      assert.same(doc, decode(req.body))
    end)

    -- Issue #15 owns v1.1 partial results under code 200 (corrections.md #5). The documented evidence is
    -- XML only (capillary/v11_batch_200_some_failed.xml.http); the JSON reply served here carries
    -- that documented status over two subscription items, one failed (constructed, see its header).
    -- Lead: enable after merging #15 (ENABLE_200_PARTIAL = true); it fails on this branch alone.
    local ENABLE_200_PARTIAL = true
    local partial_name = "a batch answering code 200 'Some requests have failed due to errors' is partial"
    local function partial_case()
      local r = assert(client():customer_subscriptions {
        { email = "tom.sawyer@example.com", priority = "bulk", scope = "all", channel = "email", is_subscribed = "0" },
        { email = "tom.sawyer@example.com", priority = "bulk", scope = "all", channel = "sms", is_subscribed = "0" },
      })
      assert.is_true(r.partial)
      assert.equals(1, #r.failed)
    end
    if ENABLE_200_PARTIAL then it(partial_name, partial_case) else pending(partial_name .. " (issue #15)") end

    it("v2 points/reverse: the documented request and reply", function()
      local doc = request_sample("capillary/v2_points_reverse.request.http")
      local r = assert(client():v2_points_reverse(doc))
      assert.equals("5wyOZM", r.reversal.reversalId)
      assert.equals(20, r.reversal.pointsReversed)
      assert.same(doc, decode(srv:last().body))
    end)
  end)

  describe("CRM.COM", function()
    local function client(release)
      return assert(loyalty.client { provider = "crmcom", base_url = srv.url .. "/crm", username = "u",
                                     password = "p", organisation = "CRMDEMO", release = release,
                                     token_store = token_store.private(), sleep = function() end })
    end

    it("rewards_participants/show (R5+): POST with the documented body, the token never in the URL", function()
      local r = assert(client():participant_show { number = "29" })
      assert.equals("29", r.participant.number)
      assert.equals("Marketing Unit", r.participant.sign_up_by_unit.name)
      local all = srv:requests()
      local login, show = all[#all - 1], all[#all]
      assert.equals("/crm/authentication/token", login.path)
      assert.equals("POST", show.method)
      assert.equals("/crm/rewards_participants/show", show.path)
      assert.equals("", show.query)
      local doc = request_sample("crmcom/rewards_participants_show.request.http")
      doc.token = "4AD9C84FA60F9FE407140E20F707726A" -- the documented login reply's token
      assert.same(doc, decode(show.body))
      assert.equals("application/json", show.headers["content-type"])
    end)

    it("rewards_participants/show on R4: GET with the token and the flattened identifier in the query", function()
      local r = assert(client("R4"):participant_show { number = "29" })
      assert.equals("29", r.participant.number)
      local show = srv:last()
      assert.equals("GET", show.method)
      assert.same({ token = "4AD9C84FA60F9FE407140E20F707726A", rewards_participant_identifier = "number=29" },
                  samples.query(show.query))
    end)
  end)
end)

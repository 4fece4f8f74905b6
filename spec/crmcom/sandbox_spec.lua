-- The CRM.COM provider against the sandbox: logins and tokens, the POS flow over real wallet
-- amounts on both API levels (before R17: participant identifiers; R17+: accounts receivable),
-- what each release refuses, products/synchronise in parallel batches with faults.
local loyalty = require "loyalty"
local token_store = require "loyalty.token_store"
local crmcom = require "loyalty.providers.crmcom"
local core = require "loyalty.core"
local support = require "support.sandbox"

local MARIA = { account = "ACR0000000164" } -- wallet 12.50 (R17+: events name the accounts receivable)
local MARIA_RP = { number = "RP0000000019" } -- the same participant, as show and pre-R17 events name her
local ELENI = { card = "CARD-4000-0021" }   -- wallet 120.00
local ANDREAS = { mobile = "35799000020" }  -- wallet 0

describe("crmcom against the sandbox", function()
  local sb

  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)

  local function client(extra, server)
    local opts = { provider = "crmcom", base_url = (server or sb).url .. "/crmapi/rest/v2", username = "pos.user",
                   password = "pos123", organisation = "SANDBOXORG", token_store = token_store.private(),
                   sleep = function() end, sync_definition = { name = "PRODUCTS" } }
    for k, v in pairs(extra or {}) do opts[k] = v or nil end
    return assert(loyalty.client(opts))
  end

  before_each(function()
    assert(sb:reset())
  end)

  describe("auth", function()
    it("refuses a wrong password or organisation as an auth error", function()
      local _, err = client({ password = "nope" }):participant_show(MARIA_RP)
      assert.equals("auth", err.kind)
      assert.equals("AUTHENTICATION_FAILED", err.code)
      _, err = client({ organisation = "OTHER" }):participant_show(MARIA_RP)
      assert.equals("auth", err.kind)
    end)

    it("logs in with the Web API key", function()
      local c = client { username = false, password = false, organisation = false,
                         api_key = "5B0E5C0F3C6A4E2F9D1B7A8C6E4D2F10" }
      assert.equals("RP0000000019", assert(c:participant_show(MARIA_RP)).participant.number)
      local _, err = client({ username = false, password = false, organisation = false, api_key = "WRONGKEY" })
                     :participant_show(MARIA_RP)
      assert.equals("auth", err.kind)
    end)

    it("a call without a valid token is refused by the CRM", function()
      local r = sb:post("/crmapi/rest/v2/customer_events/purchases/preview",
                        { token = "forged", accounts_receivable_identifier = MARIA })
      assert.equals(401, r.status)
      assert.equals("INVALID_TOKEN", r.json.status.code)
    end)

    it("logs in again, once, when the CRM rejects an expired token", function()
      local c = client()
      assert(c:participant_show(MARIA_RP))
      assert.equals(1, sb:crmcom_state().logins)
      assert(sb:crmcom_expire_tokens())
      assert(c:participant_show(MARIA_RP))
      assert(c:participant_show(MARIA_RP))
      assert.equals(2, sb:crmcom_state().logins)
    end)

    it("logs in again when two hours have passed, before the CRM refuses", function()
      local now = os.time()
      local c = client { clock = function() return now end }
      assert(c:participant_show(MARIA_RP))
      now = now + 7200
      assert(c:participant_show(MARIA_RP))
      assert.equals(2, sb:crmcom_state().logins)
    end)
  end)

  describe("the POS flow", function()
    local lines = {
      { code = "COFFEE-L", quantity = 2, net = 8, vat = 1.52, total = 9.52 },
      { code = "CROISSANT", net = 2.5, vat = 0.48, total = 2.98 },
      { code = "GIFT-CARD", net = 20, vat = 0, total = 20 },
    }

    it("identifies, previews, purchases, spends and closes the sale with the wallet's real amounts", function()
      local c = client()
      local who = assert(c:participant_show(ELENI)).participant
      assert.equals("RP0000000021", who.number)
      assert.equals("Eleni", who.accounts_receivable.account_owner.first_name)
      assert.equals("Limassol Store", who.sign_up_by_unit.name) -- a Unit object, as documented
      assert.equals(core.null, who.udf_string_1)

      local pv = assert(c:purchase_preview { participant = ELENI, lines = lines }).preview
      assert.equals(0.53, pv.award)                -- 5% of the 10.50 net that earns (the gift card does not)
      assert.equals(120, pv.wallet_balance)
      assert.equals(32.5, pv.eligible_spend)       -- capped by the basket
      assert.equals(1, pv.min_spend)
      assert.equals(50, pv.max_spend)
      assert.equals("FRONT_END_REDUCTION", pv.reduction_method)
      assert.equals(32.5, pv.offer)

      local created = assert(c:purchase_create { participant = ELENI, lines = lines, reference = "POS-7001" })
      local p = created.purchase
      assert.same({ "UNIT-LIMASSOL", "Limassol Store" }, { created.data.performed_by_unit.id,
                                                           created.data.performed_by_unit.name })
      assert.equals("POSTED", p.state)
      assert.equals(32.5, p.total)
      assert.equals(0.53, p.awarded)
      assert.equals(120.53, sb:crmcom_wallet("RP0000000021"))

      local s = assert(c:spend_request_create { participant = ELENI, purchase = { number = p.number }, amount = 40,
                                                reference = "SPEND-7001" }).spend
      assert.equals(40, s.requested)
      assert.equals(32.5, s.actual)                -- what is left of the purchase total
      assert.equals(88.03, sb:crmcom_wallet("RP0000000021"))

      local close = crmcom.amount_to_collect(p, { s }, pv.reduction_method)
      assert.equals(0, close.due)
      assert.equals(32.5, close.spent)

      -- a replayed spend request moves no money
      local again = assert(c:spend_request_create { participant = ELENI, purchase = { number = p.number },
                                                    amount = 40, reference = "SPEND-7001" }).spend
      assert.equals(s.number, again.number)
      assert.equals(88.03, sb:crmcom_wallet("RP0000000021"))
    end)

    it("caps the actual spend by the maximum per transaction and the wallet", function()
      local c = client()
      local big = { { code = "COFFEE-L", net = 100, vat = 19, total = 119 } }
      local p = assert(c:purchase_create { participant = ELENI, lines = big, reference = "POS-BIG" }).purchase
      local s = assert(c:spend_request_create { participant = ELENI, purchase = { number = p.number } }).spend
      assert.equals(50, s.actual)                  -- maximum per transaction
      assert.equals(69, crmcom.amount_to_collect(p, { s }).due)
      local pm = assert(c:purchase_create { participant = MARIA, lines = big, reference = "POS-MARIA" }).purchase
      s = assert(c:spend_request_create { participant = MARIA, purchase = { number = pm.number }, amount = 30 }).spend
      assert.equals(17.5, s.actual)                -- 12.50 + 5.00 awarded on this purchase
      assert.equals(0, sb:crmcom_wallet("RP0000000019"))
    end)

    it("refuses spends below the minimum, on an empty wallet, and on unknown purchases", function()
      local c = client()
      local p = assert(c:purchase_create { participant = MARIA, lines = lines, reference = "POS-M1" }).purchase
      local _, err = c:spend_request_create { participant = MARIA, purchase = { number = p.number }, amount = 0.5 }
      assert.equals("api", err.kind)
      assert.equals("SPEND_BELOW_MINIMUM", err.code)
      local pa = assert(c:purchase_create { participant = ANDREAS, lines = { { code = "GIFT-CARD", total = 20 } },
                                            reference = "POS-A1" }).purchase
      _, err = c:spend_request_create { participant = ANDREAS, purchase = { number = pa.number }, amount = 5 }
      assert.equals("INSUFFICIENT_WALLET_BALANCE", err.code)
      _, err = c:spend_request_create { participant = MARIA, purchase = { number = "CE99999999" }, amount = 5 }
      assert.equals("NOT_FOUND", err.code)
      assert.equals(404, err.status)
      assert.is_true(err.not_found)
    end)

    it("cancels a purchase: the award is taken back and its spends refunded", function()
      local c = client()
      local p = assert(c:purchase_create { participant = ELENI, lines = lines, reference = "POS-C1" }).purchase
      assert(c:spend_request_create { participant = ELENI, purchase = { number = p.number }, amount = 10 })
      assert.equals(110.53, sb:crmcom_wallet("RP0000000021"))
      local cancelled = assert(c:purchase_cancel { number = p.number }).purchase
      assert.equals("CANCELLED", cancelled.state)
      assert.equals(120, sb:crmcom_wallet("RP0000000021"))
      local _, err = c:purchase_cancel { number = p.number }
      assert.equals("ALREADY_CANCELLED", err.code)
    end)

    it("pages purchases and filters fields", function()
      local c = client()
      for i = 1, 5 do
        assert(c:purchase_create { participant = MARIA, lines = lines, reference = "POS-L" .. i })
      end
      local page = assert(c:purchases_list { participant = MARIA, number_of_results = 2, offset = 3,
                                             fields_set = "number,total_amount" })
      assert.equals(2, #page.purchases)
      assert.equals("CE00000004", page.purchases[1].number)
      assert.equals(32.5, page.purchases[1].total)
      assert.is_nil(page.raw_purchases[1].life_cycle_state)
      local shown = assert(c:participant_show { number = "RP0000000019", fields_set = { "number" } }).participant
      assert.same({ number = "RP0000000019" }, shown)
    end)
  end)

  describe("products/synchronise", function()
    local function catalogue(n)
      local products = {}
      for i = 1, n do products[i] = { code = string.format("SKU-%05d", i), description = "Product " .. i } end
      return products
    end

    it("sends 2,500 products in 3 calls and reports processed and unprocessed products", function()
      local products = catalogue(2500)
      products[1500] = { description = "no code" }
      local r = assert(client():products_synchronise(products))
      assert.equals(3, r.calls)
      assert.equals(2499, #r.processed)
      assert.equals(1, #r.unprocessed)
      assert.equals("MISSING_CODE", r.unprocessed[1].error_code)
      assert.equals(2, r.unprocessed[1].batch)
      assert.equals(0, #r.failed_batches)
      local st = sb:crmcom_state()
      assert.equals(3, st.sync_calls)
      assert.equals(2499 + 3, st.products) -- plus the seed's three
    end)

    it("keeps at most max_in_flight calls in flight", function()
      assert(sb:latency(150))
      local r = assert(client():products_synchronise(catalogue(5000), { max_in_flight = 2 }))
      assert(sb:latency(0))
      assert.equals(5, r.calls)
      assert.equals(5000, #r.processed)
      local st = sb:crmcom_state()
      assert.equals(5, st.sync_calls)
      assert.is_true(st.max_in_flight_sync <= 2)
      assert.is_true(st.max_in_flight_sync > 1) -- the calls did overlap
    end)

    it("reports a failed batch with its error while the others succeed", function()
      assert(sb:faults { match = "/crmapi/rest/v2/products/synchronise", action = "body_failure", code = "ERROR",
                         message = "synchronisation definition is locked", count = 1 })
      local r = assert(client():products_synchronise(catalogue(2500), { max_in_flight = 3 }))
      assert.equals(3, r.calls)
      assert.equals(1, #r.failed_batches)
      local f = r.failed_batches[1]
      assert.equals("api", f.err.kind)
      assert.equals("synchronisation definition is locked", f.err.message)
      assert.equals(f.last - f.first + 1, f.count)
      assert.equals(2500 - f.count, #r.processed)
      assert.is_true(r.partial)
      assert.equals(2500 - f.count + 3, sb:crmcom_state().products)
    end)

    it("retries a batch that met a transient 503", function()
      assert(sb:faults { match = "/crmapi/rest/v2/products/synchronise", status = 503, count = 1 })
      local r = assert(client():products_synchronise(catalogue(2500), { max_in_flight = 3 }))
      assert.equals(0, #r.failed_batches)
      assert.equals(2500, #r.processed)
    end)

    it("renews an expired token once for the whole run", function()
      local c = client()
      assert(c:participant_show(MARIA_RP))
      assert(sb:crmcom_expire_tokens())
      local r = assert(c:products_synchronise(catalogue(2500)))
      assert.equals(2500, #r.processed)
      assert.equals(2, sb:crmcom_state().logins)
    end)

    it("the CRM refuses more than 1,000 products in one call", function()
      local c = client()
      local plan = crmcom.batch_ops.products_synchronise(nil, catalogue(1001),
                                                         { batch_size = 1000, definition = { name = "PRODUCTS" } })
      plan.specs[1].json.products_set[1001] = { code = "EXTRA" }
      local _, err = c:request(plan.specs[1])
      assert.equals("TOO_MANY_PRODUCTS", err.code)
    end)
  end)

  describe("releases", function()
    local function raw_token(server)
      local r = server:post("/crmapi/rest/v2/authentication/token",
                            { username = "pos.user", password = "pos123", organisation = "SANDBOXORG" })
      return r.json.data.token
    end

    it("R5+: show is POST with the token in the body; the sandbox refuses GET show", function()
      local c = client()
      assert.equals("RP0000000019", assert(c:participant_show(MARIA_RP)).participant.number)
      local tok = raw_token(sb)
      local r = sb:get("/crmapi/rest/v2/rewards_participants/show?token=" .. tok ..
                       "&rewards_participant_identifier=number%3DRP0000000019")
      assert.equals(405, r.status)
      assert.equals("METHOD_NOT_ALLOWED", r.json.status.code)
    end)

    it("R17+: purchases and spend requests without accounts_receivable_identifier are refused", function()
      local tok = raw_token(sb)
      local r = sb:post("/crmapi/rest/v2/customer_events/purchases/create",
                        { token = tok, rewards_participant_identifier = MARIA_RP, performed_on = "2026-12-01T10:00:00",
                          products_set = { { net_amount = 1, vat_amount = 0, total_amount = 1 } } })
      assert.equals(400, r.status)
      assert.matches("accounts_receivable_identifier is mandatory", r.json.status.message, 1, true)
      -- the client refuses before sending: a participant number is not an accounts receivable on R17
      local _, err = client():purchase_create { participant = MARIA_RP, lines = { { total = 1 } } }
      assert.equals("config", err.kind)
      assert.equals("number", err.key)
    end)

    it("R17+: products/synchronise needs a known synchronisation definition", function()
      local _, err = client({ sync_definition = false }):products_synchronise({ { code = "X" } })
      assert.equals("config", err.kind)
      assert.equals("definition", err.key)
      local c = client { sync_definition = { alternative_code = "PRD" } }
      local r = assert(c:products_synchronise({ { code = "X" } }))
      assert.equals(1, #r.processed)
      r = client({ sync_definition = { name = "NOPE" } }):products_synchronise({ { code = "X" } })
      assert.equals(1, #r.failed_batches)
      assert.is_true(r.failed_batches[1].err.not_found)
    end)

    for _, level in ipairs { { release = "R16", maria = MARIA_RP }, { release = "R4", maria = MARIA_RP } } do
      describe("a sandbox serving " .. level.release, function()
        local old
        lazy_setup(function() old = support.start { crmcom_release = level.release } end)
        lazy_teardown(function() if old then old:stop() end end)

        it("runs the POS flow and product sync with participant identifiers", function()
          local c = client({ release = level.release, sync_definition = false }, old)
          local who = assert(c:participant_show(MARIA_RP)).participant
          assert.equals("Maria", who.accounts_receivable.account_owner.first_name)
          local lines = { { code = "COFFEE-L", net = 100, vat = 19, total = 119 } }
          local pv = assert(c:purchase_preview { participant = level.maria, lines = lines }).preview
          assert.equals(12.5, pv.wallet_balance)
          local p = assert(c:purchase_create { participant = level.maria, lines = lines, reference = "OLD-1" }).purchase
          assert.equals(5, p.awarded)
          local s = assert(c:spend_request_create { participant = level.maria, purchase = { number = p.number },
                                                    amount = 10 }).spend
          assert.equals(10, s.actual)
          assert.equals(7.5, old:crmcom_wallet("RP0000000019"))
          local r = assert(c:products_synchronise({ { code = "A" }, { code = "B" } }))
          assert.equals(2, #r.processed)
        end)

        it("refuses the other HTTP method of show and accounts receivable on show", function()
          local tok = raw_token(old)
          local r
          if level.release == "R4" then
            r = old:post("/crmapi/rest/v2/rewards_participants/show",
                         { token = tok, rewards_participant_identifier = MARIA_RP })
          else
            r = old:get("/crmapi/rest/v2/rewards_participants/show?token=" .. tok ..
                        "&rewards_participant_identifier=number%3DRP0000000019")
          end
          assert.equals(405, r.status)
          local _, err = client({ release = level.release }, old):participant_show(MARIA)
          assert.equals("config", err.kind)
        end)
      end)
    end

    it("R17: the accounts receivable number books a purchase", function()
      local c = client()
      local p = assert(c:purchase_create { participant = MARIA, lines = { { total = 10, vat = 0 } },
                                           reference = "AR-1" }).purchase
      assert.equals("POSTED", p.state)
    end)
  end)
end)

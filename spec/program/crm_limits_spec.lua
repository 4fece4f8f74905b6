-- Rules looser than the CRM's per-transaction limits (Capillary 819 on points/isredeemable and
-- points/redeem). Invariants:
--   NO_GUESS   819's documented text names no maximum, so no quote is re-made at a guessed one:
--              the refusal stays, named (crm_limit) and with the CRM's own message
--   VISIBLE    every such disagreement is a rules_looser_than_crm warning through the log hook
--   BALANCE    a refused redeem changes nothing at the CRM
local loyalty = require "loyalty"
local support = require "support.sandbox"

describe("rules looser than the CRM's per-transaction maximum", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  local events
  local function program()
    events = {}
    return assert(loyalty.program {
      crm = { base_url = sb.url, username = "store.server", password = "server123", sleep = function() end,
              max_attempts = 1 },
      rules = "examples/rules", skip_redemption_otp = true,
      log = function(level, event, fields) events[#events + 1] = { level = level, event = event, fields = fields } end,
    })
  end
  local function warned(operation)
    for _, e in ipairs(events) do
      if e.event == "rules_looser_than_crm" and e.fields.operation == operation then return e end
    end
  end
  local HUCK = { mobile = "919999000003" } -- GOLD: the rules allow 7500 points; the CRM at most 5000
  local cart = { total = 20000, lines = { { sku = "TV", qty = 1, price = 20000, amount = 20000 } } }
  local function balance()
    for _, c in ipairs(assert(sb:state()).customers) do if c.mobile == HUCK.mobile then return c.loyalty_points end end
  end

  it("NO_GUESS, VISIBLE: an open quote above the CRM's maximum is refused, named and warned", function()
    local p = program()
    local q = assert(p:quote_redemption(HUCK, cart))
    assert.is_true(q.points > 5000)
    assert.is_false(q.allowed, "NO_GUESS")
    assert.equals(819, q.code)
    assert.equals("max_per_transaction", q.crm_limit)
    local w = warned("quote_redemption")
    assert.is_truthy(w, "VISIBLE")
    assert.same({ "warn", 819, q.points }, { w.level, w.fields.code, w.fields.points })
    -- within the CRM's maximum the quote stands
    local ok = assert(p:quote_redemption(HUCK, cart, 5000))
    assert.is_true(ok.allowed)
    assert.is_nil(ok.crm_limit)
    p:close()
  end)

  it("VISIBLE, BALANCE: a redeem above the CRM's maximum is refused with crm_limit and changes nothing", function()
    local p = program()
    local before = balance()
    local r, err = p:redeem(HUCK, { points = 6000, order_id = "CL-1", cart = cart })
    assert.is_nil(r)
    assert.same({ "api", 819, true, "max_per_transaction" }, { err.kind, err.code, err.crm_refused, err.crm_limit })
    assert.is_truthy(warned("redeem"), "VISIBLE")
    assert.equals(before, balance(), "BALANCE")
    local none, cerr = p:cancel_redemption(HUCK, "CL-1")
    assert.is_nil(none)
    assert.equals("no_hold", cerr.code, "a refusal is no unknown outcome: nothing is held")
    p:close()
  end)
end)

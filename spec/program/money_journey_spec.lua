-- Whole shopper journeys, every number checked against the CRM's own ledger (/sandbox/state).
-- Invariants, named where they are checked:
--   BALANCE      after each step the CRM balance = before + earned - redeemed + reversed, and the
--                program reports that balance
--   SHOWN=PAID   the value shown for points is what the CRM pays for them (isredeemable's value)
--   CAP_IN_MONEY no share cap is exceeded in money at the CRM's rate
--   RETRY_NOOP   a retried earn, redeem, return or cancel changes nothing at the CRM
--   ABANDONED    an abandoned checkout's points come back (cancel, or hold expiry by the drainer)
--   ONE_RETURN   a line cannot be returned twice; the refusal comes before any write
--   EARNED_CAP   points taken back never exceed what the order earned
--   REQUEST_IDS  every result names the CRM calls behind it
local drainer = require "loyalty.outbox.drainer"
local programs = require "outbox.helpers.programs"

local RULES = "examples/rules" -- point_value 0.25, max_share 0.5, multiple_of 50, min 200 (the CRM pays 0.5)
local TOM = { mobile = "919999000001", firstname = "Tom" }

describe("money journeys against the CRM's ledger", function()
  local ctx = programs.new()
  ctx.use()
  local sb, dir
  before_each(function() sb, dir = ctx.sb, ctx.dir end)

  local events
  local function program(extra, with_outbox)
    events = {}
    local s = {
      rules = RULES, skip_redemption_otp = true,
      log = function(level, event, fields) events[#events + 1] = { level = level, event = event, fields = fields } end,
    }
    for k, v in pairs(extra or {}) do s[k] = v end
    return ctx.program(with_outbox and {} or false, nil, s)
  end

  local function crm_balance(mobile)
    for _, c in ipairs(assert(sb:state()).customers) do
      if c.mobile == mobile then return c.loyalty_points end
    end
  end

  local function bill(number, kind)
    local out = {}
    for _, t in ipairs(assert(sb:state()).transactions) do
      if t.number == number and t.type == (kind or "REGULAR") then out[#out + 1] = t end
    end
    return out
  end

  local function redemption(id)
    for _, r in ipairs(assert(sb:state()).redemptions) do
      if r.id == id then return r end
    end
  end

  local function requests(path) return assert(sb:state()).requests[path] or 0 end

  -- What the CRM pays for `points` of this customer (SHOWN=PAID's reference).
  local function crm_pays(mobile, points)
    local r = sb:get("/v1.1/points/isredeemable?format=json&program_id=1016&mobile=" .. mobile .. "&points=" .. points)
    return tonumber(r.json.response.points.redeemable.points_redeem_value)
  end

  local function has_ids(r)
    assert.is_table(r.request_ids, "REQUEST_IDS")
    assert.is_true(#r.request_ids > 0, "REQUEST_IDS")
    for _, id in ipairs(r.request_ids) do assert.is_string(id) end
  end

  local function order(id, lines, extra)
    local o = { id = id, lines = lines, total = 0 }
    for _, l in ipairs(lines) do o.total = o.total + l.amount end
    o.gross = o.total
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  local LINES = {
    { sku = "PHONE-CASE", qty = 1, price = 547, amount = 547, categories = { "electronics" } },
    { sku = "SK-TSHIRT-M", qty = 2, price = 250, amount = 500, categories = { "fashion" } },
  }

  it("summary, quote and redeem value points at the CRM's rate, caps in money, and warn on the rules' guess",
    function()
    local p = program()
    local s = assert(p:summary(TOM))
    has_ids(s)
    assert.equals(crm_balance(TOM.mobile), s.points)
    -- SHOWN=PAID: 2000 points are worth what the CRM pays for 2000, not 2000 x the rules' 0.25
    assert.equals(crm_pays(TOM.mobile, s.points), s.value)
    assert.equals(0.5, s.point_value)
    local warned
    for _, e in ipairs(events) do if e.event == "point_value_mismatch" then warned = e end end
    assert.is_table(warned)
    assert.equals("warn", warned.level)
    assert.same({ 0.25, 0.5 }, { warned.fields.rules_point_value, warned.fields.crm_point_value })
    assert.equals(0.25, s.point_value_mismatch.rules_point_value)

    for _, cart in ipairs { { total = 1047, lines = LINES }, { total = 100, lines = { LINES[1] } },
                            { total = 2597, lines = LINES }, { total = 1999.99, lines = LINES } } do
      local q = assert(p:quote_redemption(TOM, cart))
      has_ids(q)
      if q.allowed then
        -- CAP_IN_MONEY: what the points pay never passes half the cart at the CRM's rate
        assert.is_true(q.value <= 0.5 * cart.total + 1e-9, "CAP_IN_MONEY " .. q.value .. " of " .. cart.total)
        assert.equals(crm_pays(TOM.mobile, q.points), q.value, "SHOWN=PAID")
        assert.equals(0, q.points % 50)
      else
        assert.is_true(q.max * 0.5 <= 0.5 * cart.total + 1e-9, "CAP_IN_MONEY")
      end
    end
    -- 100.00 cart: at most 50.00 = 100 points, below the rules' minimum of 200
    local small = assert(p:quote_redemption(TOM, { total = 100, lines = { LINES[1] } }))
    assert.is_false(small.allowed)
    assert.equals(100, small.max)

    -- a redemption always needs what it pays for
    local r, err = p:redeem(TOM, { points = 500, order_id = "J-NOCART" })
    assert.is_nil(r)
    assert.same({ "refused", "cart" }, { err.kind, err.field })
    -- asking past the cap in money is refused before the CRM is asked to redeem
    r, err = p:redeem(TOM, { points = 1100, order_id = "J-CAP", cart = { total = 1047, lines = LINES } })
    assert.is_nil(r)
    assert.equals("refused", err.kind)
    assert.equals(523.5, err.max_share_value)
    assert.equals(0, requests("/v1.1/points/redeem"))
    p:close()
  end)

  it("a rule set loaded with another point_value is checked against the CRM's rate at once", function()
    local rules = dir .. "/rules-reload"
    assert(os.execute("mkdir -p " .. rules))
    for _, f in ipairs { "program.lua", "earn.lua", "categories.lua" } do
      assert(os.execute("cp examples/rules/" .. f .. " " .. rules .. "/"))
    end
    local function write(pv)
      local fh = assert(io.open(rules .. "/redemption.lua", "w"))
      fh:write("point_value = " .. pv .. "\nmin_points = 200\nmultiple_of = 50\nmax_share = 0.5\n")
      fh:close()
    end
    write("0.5")
    local p = program { rules = rules, rules_check_interval_ms = 0 }
    assert(p:summary(TOM))
    local function mismatches()
      local k = 0
      for _, e in ipairs(events) do if e.event == "point_value_mismatch" then k = k + 1 end end
      return k
    end
    assert.equals(0, mismatches())
    assert.is_nil(p.point_value_mismatch)
    write("0.3") -- an analyst's edit
    os.execute("touch -d '+2 seconds' " .. rules .. "/redemption.lua")
    assert(p:ruleset())
    assert.equals(1, mismatches())
    assert.equals(0.3, p.point_value_mismatch.rules_point_value)
    p:close()
  end)

  it("where the rules are looser than the CRM, the CRM's refusal comes back as a clear error", function()
    -- GOLD may redeem 7500 points by the rules; the CRM's maximum per transaction is 5000.
    local p = program()
    local HUCK = { mobile = "919999000003" }
    local bal = crm_balance(HUCK.mobile)
    local cart = { total = 20000, lines = { { sku = "TV", qty = 1, price = 20000, amount = 20000 } } }
    local q = assert(p:quote_redemption(HUCK, cart, 6000))
    assert.is_false(q.allowed)
    assert.equals(819, q.code)
    assert.matches("the CRM refuses", q.reason)
    local r, err = p:redeem(HUCK, { points = 6000, order_id = "J-LOOSE", cart = cart })
    assert.is_nil(r)
    assert.same({ "api", 819, true }, { err.kind, err.code, err.crm_refused })
    assert.matches("the CRM refuses the redemption", err.message)
    assert.equals(bal, crm_balance(HUCK.mobile), "BALANCE")
    p:close()
  end)

  it("the CRM's rate is cached for point_value_ttl_s, and the mismatch is warned once", function()
    local clock = os.time()
    local p = program { point_value_ttl_s = 300, clock = function() return clock end }
    assert(p:summary(TOM))
    local asked = requests("/v1.1/points/isredeemable")
    assert(p:summary(TOM))
    assert.equals(asked, requests("/v1.1/points/isredeemable"))
    clock = clock + 301
    local s = assert(p:summary(TOM))
    assert.equals(asked + 1, requests("/v1.1/points/isredeemable"))
    assert.equals(crm_pays(TOM.mobile, s.points), s.value, "SHOWN=PAID")
    local warned = 0
    for _, e in ipairs(events) do if e.event == "point_value_mismatch" then warned = warned + 1 end end
    assert.equals(1, warned)
    p:close()
  end)

  it("redeem -> order -> line return -> the same line again -> full return -> retries: every step on the ledger",
    function()
    local p = program()
    local cart = { total = 1047, lines = LINES }
    local bal = crm_balance(TOM.mobile)

    -- redeem (a hold on J-1)
    local q = assert(p:quote_redemption(TOM, cart))
    local red = assert(p:redeem(TOM, { points = q.points, order_id = "J-1", cart = cart }))
    has_ids(red)
    assert.equals(q.value, red.value, "SHOWN=PAID")
    assert.equals(crm_pays(TOM.mobile, red.points), red.value, "SHOWN=PAID")
    bal = bal - red.points
    assert.equals(bal, crm_balance(TOM.mobile), "BALANCE")
    assert.equals(bal, red.balance, "BALANCE")
    -- RETRY_NOOP: the same redeem again is the same redemption, nothing debited
    local again = assert(p:redeem(TOM, { points = q.points, order_id = "J-1", cart = cart }))
    assert.equals(red.redemption_id, again.redemption_id, "RETRY_NOOP")
    assert.equals(bal, crm_balance(TOM.mobile), "RETRY_NOOP")

    -- the order, paid partly with points (the held redemption is tagged to the bill)
    local o = order("J-1", LINES)
    o.total = o.total - red.value
    local placed = assert(p:order_placed(TOM, o))
    has_ids(placed)
    local b = bill("J-1")[1]
    assert.equals(b.points_awarded, placed.points_earned)
    assert.equals("balance_change", placed.points_earned_source)
    bal = bal + placed.points_earned
    assert.equals(bal, crm_balance(TOM.mobile), "BALANCE")
    assert.equals(bal, placed.balance, "BALANCE")
    -- RETRY_NOOP: the bill again earns nothing and makes up no points
    local dup = assert(p:order_placed(TOM, o))
    assert.is_true(dup.duplicate)
    assert.is_nil(dup.points_earned)
    assert.is_string(dup.points_earned_unknown)
    assert.equals(1, #bill("J-1"))
    assert.equals(bal, crm_balance(TOM.mobile), "RETRY_NOOP")
    -- too late to cancel a placed order's redemption
    local c, cerr = p:cancel_redemption(TOM, "J-1")
    assert.is_nil(c)
    assert.equals("order_placed", cerr.code)
    assert.equals(bal, crm_balance(TOM.mobile))

    -- return one of the two T-shirts
    local line = assert(p:order_returned(TOM, o, { lines = { { sku = "SK-TSHIRT-M", qty = 1 } } }))
    has_ids(line)
    local ret = bill("J-1", "RETURN")[1]
    assert.equals(ret.points_deducted, line.points_deducted)
    assert.is_true(line.points_deducted <= placed.points_earned, "EARNED_CAP")
    -- the redemption's share of the returned money: 250 of 1047
    assert.equals(math.floor(red.points * 250 / 1047), line.points_reversed)
    bal = bal - line.points_deducted + line.points_reversed
    assert.equals(bal, crm_balance(TOM.mobile), "BALANCE")
    assert.equals(bal, line.balance, "BALANCE")

    -- ONE_RETURN: the two T-shirts were bought, one is back: two more is refused, before any write
    local posts = requests("/v1.1/transaction/add")
    local r, err = p:order_returned(TOM, o, { lines = { { sku = "SK-TSHIRT-M", qty = 2 } } })
    assert.is_nil(r)
    assert.same({ "refused", "over_return", 1 }, { err.kind, err.code, err.remaining })
    assert.equals(posts, requests("/v1.1/transaction/add"), "ONE_RETURN")
    -- the other T-shirt, then that line once more
    local second = assert(p:order_returned(TOM, o, { lines = { { sku = "SK-TSHIRT-M", qty = 1 } } }))
    bal = bal - second.points_deducted + second.points_reversed
    assert.equals(bal, crm_balance(TOM.mobile), "BALANCE")
    posts = requests("/v1.1/transaction/add")
    r, err = p:order_returned(TOM, o, { lines = { { sku = "SK-TSHIRT-M", qty = 1 } } })
    assert.is_nil(r)
    assert.equals("over_return", err.code, "ONE_RETURN")
    assert.equals(posts, requests("/v1.1/transaction/add"), "ONE_RETURN")
    -- and the CRM itself refuses a line beyond what is left (629)
    local direct = sb:post("/v1.1/transaction/add", { root = { transaction = {
      type = "return", return_type = "LINE_ITEM", number = "J-1", amount = 250, customer = { mobile = TOM.mobile },
      line_items = { line_item = { { serial = 2, item_code = "SK-TSHIRT-M", qty = 1, amount = 250 } } } } } })
    assert.equals(629, direct.json.response.transactions.transaction[1].item_status.code)

    -- the whole order: what remains, and the rest of the redemption
    local full = assert(p:order_returned(TOM, o))
    assert.equals("FULL", full.requested_kind)
    bal = bal - full.points_deducted + full.points_reversed
    assert.equals(bal, crm_balance(TOM.mobile), "BALANCE")
    assert.equals(bal, full.balance, "BALANCE: a full return's balance includes the reversed redemption")
    assert.equals(red.points, line.points_reversed + second.points_reversed + full.points_reversed)
    assert.is_true(redemption(red.redemption_id).reversed)
    local taken = 0
    for _, t in ipairs(bill("J-1", "RETURN")) do taken = taken + t.points_deducted end
    assert.is_true(taken <= placed.points_earned, "EARNED_CAP")
    -- RETRY_NOOP: the whole return again changes nothing
    posts = requests("/v1.1/transaction/add")
    local retry = assert(p:order_returned(TOM, o))
    assert.is_true(retry.already)
    assert.equals(bal, retry.balance)
    assert.equals(posts, requests("/v1.1/transaction/add"), "RETRY_NOOP")
    assert.equals(bal, crm_balance(TOM.mobile), "RETRY_NOOP")
    p:close()
  end)

  it("with the CRM down, queued orders and returns land once, and a queued line is not returned twice",
    function()
    local p = program(nil, true)
    local bal = crm_balance(TOM.mobile)
    local o = order("J-Q", LINES)
    assert(p:order_placed(TOM, o))
    local placed = bill("J-Q")[1]
    bal = bal + placed.points_awarded
    -- the return cannot reach the CRM: it is queued
    assert(sb:faults { match = "/v1.1/transaction/add", count = 2, status = 503 })
    local q = assert(p:order_returned(TOM, o, { lines = { { sku = "SK-TSHIRT-M", qty = 2 } } }))
    assert.is_true(q.queued)
    assert(sb:clear_faults())
    assert.equals(bal, crm_balance(TOM.mobile), "BALANCE: nothing booked yet")
    -- ONE_RETURN: the queued return counts; the same T-shirts again are refused before any write
    local posts = requests("/v1.1/transaction/add")
    local r, err = p:order_returned(TOM, o, { lines = { { sku = "SK-TSHIRT-M", qty = 1 } } })
    assert.is_nil(r)
    assert.equals("over_return", err.code, "ONE_RETURN")
    assert.equals(posts, requests("/v1.1/transaction/add"), "ONE_RETURN")
    local t = assert(drainer.run(p, p.outbox, { sleep = function() end }))
    assert.equals(1, t.delivered)
    local ret = bill("J-Q", "RETURN")
    assert.equals(1, #ret)
    bal = bal - ret[1].points_deducted
    assert.equals(bal, crm_balance(TOM.mobile), "BALANCE")
    assert.is_true(ret[1].points_deducted <= placed.points_awarded, "EARNED_CAP")
    -- RETRY_NOOP: draining again books nothing
    t = assert(drainer.run(p, p.outbox, { sleep = function() end, clock = function() return os.time() + 1e6 end }))
    assert.equals(0, t.claimed)
    assert.equals(1, #bill("J-Q", "RETURN"))
    p:close()
  end)

  it("an abandoned checkout's points come back on cancel, once", function()
    local p = program()
    local bal = crm_balance(TOM.mobile)
    local red = assert(p:redeem(TOM, { points = 400, order_id = "J-AB", cart = { total = 1047, lines = LINES } }))
    assert.equals(bal - 400, crm_balance(TOM.mobile), "BALANCE")
    assert.is_number(red.hold_expires_at)
    local c = assert(p:cancel_redemption(TOM, "J-AB"))
    has_ids(c)
    assert.is_true(c.cancelled)
    assert.equals(400, c.points_reversed)
    assert.equals(bal, crm_balance(TOM.mobile), "ABANDONED")
    assert.equals(bal, c.balance, "BALANCE")
    -- RETRY_NOOP
    local again = assert(p:cancel_redemption(TOM, "J-AB"))
    assert.is_true(again.already)
    assert.equals(bal, crm_balance(TOM.mobile), "RETRY_NOOP")
    -- a redeem retried for the cancelled order would get back the reversed redemption: refused
    local r, rerr = p:redeem(TOM, { points = 400, order_id = "J-AB", cart = { total = 1047, lines = LINES } })
    assert.is_nil(r)
    assert.equals("redemption_released", rerr.code)
    assert.equals(bal, crm_balance(TOM.mobile))
    local none, err = p:cancel_redemption(TOM, "J-NEVER")
    assert.is_nil(none)
    assert.equals("no_hold", err.code)
    p:close()
  end)

  it("the drainer gives back a hold whose order never came, not one whose order was placed", function()
    local clock = os.time()
    local p = program({ redemption_hold_s = 60, clock = function() return clock end }, true)
    local bal = crm_balance(TOM.mobile)
    local cart = { total = 2597, lines = LINES }
    local gone = assert(p:redeem(TOM, { points = 300, order_id = "J-EXP", cart = cart }))
    local kept = assert(p:redeem(TOM, { points = 200, order_id = "J-OK", cart = cart }))
    local placed = assert(p:order_placed(TOM, order("J-OK", LINES)))
    bal = bal - 300 - 200 + placed.points_earned
    assert.equals(bal, crm_balance(TOM.mobile), "BALANCE")
    -- not yet due
    local t = assert(drainer.run(p, p.outbox, { sleep = function() end }))
    assert.equals(0, t.claimed)
    clock = clock + 61
    t = assert(drainer.run(p, p.outbox, { sleep = function() end, clock = function() return clock end }))
    assert.equals(1, t.delivered)
    bal = bal + 300
    assert.equals(bal, crm_balance(TOM.mobile), "ABANDONED")
    assert.is_true(redemption(gone.redemption_id).reversed)
    assert.is_false(redemption(kept.redemption_id).reversed == true)
    assert.equals("expired", p.holds:find("J-EXP").state)
    assert.equals("placed", p.holds:find("J-OK").state)
    -- RETRY_NOOP: a cancel after expiry changes nothing
    assert.is_true(assert(p:cancel_redemption(TOM, "J-EXP")).already)
    assert.equals(bal, crm_balance(TOM.mobile), "RETRY_NOOP")
    -- the order after all, late: posted (never lost) without the given-back redemption, and loudly
    local late = assert(p:order_placed(TOM, order("J-EXP", LINES, {
      redemption = { id = gone.redemption_id, points = 300, value = gone.value } })))
    assert.equals("expired", late.redemption_released)
    assert.equals(gone.value, late.redemption_unpaid_value)
    assert.equals(1, #bill("J-EXP"))
    assert.is_nil(bill("J-EXP")[1].payment_details[1])
    local warned
    for _, e in ipairs(events) do if e.event == "redemption_released_before_order" then warned = e end end
    assert.equals("J-EXP", warned.fields.order_id)
    bal = bal + late.points_earned
    assert.equals(bal, crm_balance(TOM.mobile), "BALANCE")
    p:close()
  end)

  it("a cancel while the CRM is down is kept in the outbox and the drainer gives the points back", function()
    local p = program(nil, true)
    local bal = crm_balance(TOM.mobile)
    assert(p:redeem(TOM, { points = 250, order_id = "J-DOWN", cart = { total = 2597, lines = LINES } }))
    assert(sb:faults { match = "/v1.1/transaction/get", count = 4, status = 503 })
    local c = assert(p:cancel_redemption(TOM, "J-DOWN"))
    assert.is_true(c.queued)
    assert.equals(bal - 250, crm_balance(TOM.mobile))
    assert(sb:clear_faults())
    local t = assert(drainer.run(p, p.outbox, { sleep = function() end }))
    assert.equals(1, t.delivered)
    assert.equals(bal, crm_balance(TOM.mobile), "ABANDONED")
    p:close()
  end)

  it("another process without a shared outbox cancels with the redeem result the store kept", function()
    local p1, p2 = program(), program()
    local bal = crm_balance(TOM.mobile)
    local red = assert(p1:redeem(TOM, { points = 300, order_id = "J-TWO", cart = { total = 2597, lines = LINES } }))
    local none, err = p2:cancel_redemption(TOM, "J-TWO")
    assert.is_nil(none)
    assert.equals("no_hold", err.code)
    local c = assert(p2:cancel_redemption(TOM, "J-TWO", red))
    assert.is_true(c.cancelled)
    assert.equals(bal, crm_balance(TOM.mobile), "ABANDONED")
    -- RETRY_NOOP: the CRM says it is already reversed (3802); nothing changes
    assert(p2:cancel_redemption(TOM, "J-TWO", red))
    assert.equals(bal, crm_balance(TOM.mobile), "RETRY_NOOP")
    p1:close()
    p2:close()
  end)

  it("without an outbox, expire_holds gives back what is past its hold time", function()
    local clock = os.time()
    local p = program { redemption_hold_s = 30, clock = function() return clock end }
    local bal = crm_balance(TOM.mobile)
    assert(p:redeem(TOM, { points = 200, order_id = "J-MEM", cart = { total = 2597, lines = LINES } }))
    assert.same({ expired = 0, failed = 0 }, p:expire_holds())
    clock = clock + 31
    assert.same({ expired = 1, failed = 0 }, p:expire_holds())
    assert.equals(bal, crm_balance(TOM.mobile), "ABANDONED")
    assert.same({ expired = 0, failed = 0 }, p:expire_holds())
    p:close()
  end)

  it("a queued subscription batch with a refused item is a dead letter naming it, never delivered", function()
    local p = program({ outbox = { backend = "sqlite", path = dir .. "/subs.db", always = true } })
    local q = assert(p:subscribe(TOM, { email = false, whatsapp = true }))
    assert.is_true(q.queued)
    local t = assert(drainer.run(p, p.outbox, { sleep = function() end }))
    assert.same({ 0, 1 }, { t.delivered, t.dead })
    local e = assert(p.outbox:get(q.outbox_id))
    assert.equals("dead", e.state)
    assert.matches("WHATSAPP", e.last_error)
    assert.matches("1101", e.last_error)
    p:close()
  end)

  it("every result names the CRM calls behind it", function()
    local p = program { skip_redemption_otp = false }
    has_ids(assert(p:login(TOM)))
    has_ids(assert(p:send_otp(TOM, 200)))
    has_ids(assert(p:register { mobile = "919800000042", firstname = "New" }))
    has_ids(assert(p:subscribe(TOM, { email = true })))
    local _, err = p:redeem(TOM, { points = 200, order_id = "J-IDS", otp = "WRONG1", cart = { total = 2597 } })
    has_ids(err)
    p:close()
  end)

  it("a subscription batch with a failed item is partial and names the item", function()
    local p = program()
    local r = assert(p:subscribe(TOM, { email = false, whatsapp = true }))
    has_ids(r)
    assert.is_true(r.partial)
    assert.equals(1, #r.failed)
    assert.matches("channel=WHATSAPP", r.failed[1].item)
    assert.equals(1101, r.failed[1].code)
    local warned
    for _, e in ipairs(events) do if e.event == "subscription_partial" then warned = e end end
    assert.matches("WHATSAPP", warned.fields.failed)
    p:close()
  end)
end)

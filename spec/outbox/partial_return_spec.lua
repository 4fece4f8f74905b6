-- Partial returns have no idempotency key at Capillary: each carries loyalty_return_ref, and the
-- drainer asks customer/transactions before replaying one. Checked against the sandbox's ledger.
local core = require "loyalty.core"
local drainer = require "loyalty.outbox.drainer"
local programs = require "outbox.helpers.programs"

local TOM = { mobile = "919999000001", firstname = "Tom" }
local LATER = os.time() + 1e6 -- a drainer clock past every backoff

local function order(id)
  return { id = id, total = 1000, gross = 1000,
           lines = { { sku = "SK-A", qty = 1, price = 600, amount = 600 },
                     { sku = "SK-B", qty = 1, price = 400, amount = 400 } } }
end

describe("partial returns through the outbox", function()
  local ctx, sb = programs.new(), nil
  lazy_setup(ctx.start)
  lazy_teardown(ctx.stop)
  before_each(function()
    ctx.reset()
    sb = ctx.sb
  end)

  local function program(outbox_extra, crm_extra) return ctx.program(outbox_extra, crm_extra) end

  local function drain(p, clock)
    return assert(drainer.run(p, p.outbox, { sleep = function() end, clock = clock }))
  end

  -- The CRM's returns of this bill and kind, from the sandbox's state.
  local function returns(number, kind)
    local out = {}
    for _, t in ipairs(assert(sb:state()).transactions) do
      if t.number == number and t.type == "RETURN" and t.return_type == kind then out[#out + 1] = t end
    end
    return out
  end

  local function ref_of(t)
    for _, f in ipairs(t.custom_fields or {}) do
      if f.name == "loyalty_return_ref" then return f.value end
    end
  end

  -- Waits (bounded) until the sandbox has booked a request whose client gave up on it.
  local function await_returns(number, kind, count)
    for _ = 1, 200 do
      if #returns(number, kind) >= count then return end
      core.sleep(0.05)
    end
    error("the sandbox never booked the delayed return of " .. number)
  end

  local function posts()
    return assert(sb:state()).requests["/v1.1/transaction/add"] or 0
  end

  local function lookups()
    return assert(sb:state()).requests["/v1.1/customer/transactions"] or 0
  end

  it("stamps every return, direct or queued, with its own reference", function()
    local p = program()
    assert(p:order_placed(TOM, order("PR-0")))
    assert(p:order_returned(TOM, order("PR-0"), { amount = 100 }))
    assert(p:order_returned(TOM, order("PR-0"), { amount = 100 }))
    local list = returns("PR-0", "AMOUNT")
    assert.equals(2, #list)
    assert.matches("^return:PR%-0:%x+$", ref_of(list[1]))
    assert.matches("^return:PR%-0:%x+$", ref_of(list[2]))
    assert.not_equals(ref_of(list[1]), ref_of(list[2]))
    -- The whole-order return after partial ones posts what remains (the CRM refuses FULL then: 639),
    -- under the order's one whole-return reference.
    assert(p:order_returned(TOM, order("PR-0")))
    assert.equals(0, #returns("PR-0", "FULL"))
    local rest = returns("PR-0", "AMOUNT")[3]
    assert.equals("return:PR-0", ref_of(rest))
    assert.equals(800, rest.amount)
    p:close()
  end)

  it("a line return whose reply was lost after the CRM booked it is delivered, not booked again", function()
    local p = program(nil, { timeout_ms = 300 })
    assert(p:order_placed(TOM, order("PR-1")))
    -- The sandbox sleeps past the client's timeout, then books the return all the same.
    assert(sb:faults { match = "/v1.1/transaction/add", count = 1, action = "delay", ms = 1200 })
    local r = assert(p:order_returned(TOM, order("PR-1"), { lines = { order("PR-1").lines[2] } }))
    assert.is_true(r.queued)
    assert.equals("timeout", r.crm_error.kind)
    await_returns("PR-1", "LINE_ITEM", 1)
    local entry = assert(p.outbox:get(r.outbox_id))
    assert.equals(ref_of(returns("PR-1", "LINE_ITEM")[1]), entry.dedupe_key)
    local before, looked = posts(), lookups()
    local t = drain(p)
    assert.equals(1, t.delivered)
    assert.equals("delivered", assert(p.outbox:get(r.outbox_id)).state)
    assert.equals(before, posts())
    assert.equals(1, lookups() - looked) -- the drainer's one lookup
    assert.equals(1, #returns("PR-1", "LINE_ITEM"))
    p:close()
  end)

  it("the same when the drainer's own attempt lost the reply (always = true)", function()
    local p = program({ always = true }, { timeout_ms = 300 })
    local direct = program()
    assert(direct:order_placed(TOM, order("PR-2")))
    direct:close()
    local r = assert(p:order_returned(TOM, order("PR-2"), { lines = { order("PR-2").lines[1] } }))
    assert.is_true(r.queued)
    assert(sb:faults { match = "/v1.1/transaction/add", count = 1, action = "delay", ms = 1200 })
    local t = drain(p)
    assert.equals(1, t.failed)
    assert.matches("timeout", assert(p.outbox:get(r.outbox_id)).last_error)
    await_returns("PR-2", "LINE_ITEM", 1)
    t = drain(p, function() return LATER end)
    assert.equals(1, t.delivered)
    assert.equals("delivered", assert(p.outbox:get(r.outbox_id)).state)
    assert.equals(1, #returns("PR-2", "LINE_ITEM"))
    p:close()
  end)

  it("an amount return that never reached the CRM is posted on replay exactly once", function()
    local p = program()
    assert(p:order_placed(TOM, order("PR-3")))
    -- An earlier return of the same amount is a different return: the lookup must not take it.
    assert(p:order_returned(TOM, order("PR-3"), { amount = 150 }))
    assert(sb:faults { match = "/v1.1/transaction/add", count = 1, status = 503 })
    local r = assert(p:order_returned(TOM, order("PR-3"), { amount = 150 }))
    assert.is_true(r.queued)
    assert.equals(503, r.crm_error.status)
    assert.equals(1, #returns("PR-3", "AMOUNT"))
    local looked = lookups()
    local t = drain(p)
    assert.equals(1, t.delivered)
    assert.equals(1, lookups() - looked) -- the drainer's one lookup
    local list = returns("PR-3", "AMOUNT")
    assert.equals(2, #list)
    assert.equals(assert(p.outbox:get(r.outbox_id)).dedupe_key, ref_of(list[2]))
    t = drain(p, function() return LATER end)
    assert.equals(0, t.claimed)
    assert.equals(2, #returns("PR-3", "AMOUNT"))
    p:close()
  end)

  it("posts nothing while the lookup fails, keeps the entry with the lookup's error, then delivers", function()
    local p = program()
    assert(p:order_placed(TOM, order("PR-4")))
    assert(sb:faults { match = "/v1.1/transaction/add", count = 1, status = 503 })
    local r = assert(p:order_returned(TOM, order("PR-4"), { amount = 200 }))
    assert.is_true(r.queued)
    assert(sb:faults { match = "/v1.1/customer/transactions", count = 2, status = 503 })
    local before = posts()
    local t = drain(p)
    assert.equals(1, t.failed)
    local entry = assert(p.outbox:get(r.outbox_id))
    assert.equals("pending", entry.state)
    assert.matches("http error 503", entry.last_error)
    assert.equals(before, posts())
    assert.equals(0, #returns("PR-4", "AMOUNT"))
    t = drain(p, function() return LATER end)
    assert.equals(1, t.delivered)
    assert.equals(before + 1, posts())
    assert.equals(1, #returns("PR-4", "AMOUNT"))
    p:close()
  end)

  it("a lookup the CRM refuses makes a dead letter, not a post", function()
    local p = program()
    assert(p:order_placed(TOM, order("PR-5")))
    assert(sb:faults { match = "/v1.1/transaction/add", count = 1, status = 503 })
    local r = assert(p:order_returned(TOM, order("PR-5"), { amount = 50 }))
    assert(sb:faults { match = "/v1.1/customer/transactions", count = 1, action = "body_failure", code = 1012 })
    local before = posts()
    local t = drain(p)
    assert.equals(1, t.dead)
    assert.matches("api error 1012", assert(p.outbox:get(r.outbox_id)).last_error)
    assert.equals(before, posts())
    assert.equals(0, #returns("PR-5", "AMOUNT"))
    p:close()
  end)
end)

-- The program with an outbox, drained against the sandbox: what is queued, how it is replayed,
-- and that the CRM ends up with each write exactly once.
local loyalty = require "loyalty"
local drainer = require "loyalty.outbox.drainer"
local programs = require "outbox.helpers.programs"

local TOM = { mobile = "919999000001", firstname = "Tom" }

local function order(id, extra)
  local o = { id = id, total = 1000, gross = 1000,
              lines = { { sku = "SK-TSHIRT-M", qty = 2, price = 500, amount = 1000, categories = { "fashion" } } } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe("program with an outbox", function()
  local ctx, sb = programs.new(), nil
  lazy_setup(ctx.start)
  lazy_teardown(ctx.stop)
  before_each(function()
    ctx.reset()
    sb = ctx.sb
  end)

  local function program(outbox_extra, extra) return ctx.program(outbox_extra, nil, extra) end

  local function drain(p, opts)
    opts = opts or {}
    opts.sleep = opts.sleep or function() end
    return assert(drainer.run(p, p.outbox, opts))
  end

  it("posts directly when the CRM answers, and queues nothing", function()
    local p = program()
    local r = assert(p:order_placed(TOM, order("OB-1")))
    assert.is_number(r.points_earned)
    assert.is_nil(r.queued)
    assert.equals(0, assert(p.outbox:status()).counts.pending)
    assert.equals(1, sb:bills("OB-1"))
    p:close()
  end)

  it("queues an order the CRM cannot take and delivers it once on drain", function()
    local p = program()
    assert(sb:faults { match = "/v1.1/transaction/add", count = 2, status = 503 })
    local r = assert(p:order_placed(TOM, order("OB-2")))
    assert.is_true(r.queued)
    assert.is_number(r.outbox_id)
    assert.equals(503, r.crm_error.status)
    assert.equals(0, sb:bills("OB-2"))
    local t = drain(p)
    assert.equals(1, t.delivered)
    assert.equals(1, sb:bills("OB-2"))
    assert.equals("delivered", assert(p.outbox:get(r.outbox_id)).state)
    p:close()
  end)

  it("tells the log about each write it queues", function()
    local events = {}
    local p = program(nil, { log = function(level, event, fields) events[#events + 1] = { level, event, fields } end })
    assert(sb:faults { match = "/v1.1/transaction/add", count = 2, status = 503 })
    local r = assert(p:order_placed(TOM, order("OB-LOG")))
    local queued
    for _, e in ipairs(events) do if e[2] == "write_queued" then queued = e end end
    assert.same({ "info", "write_queued", { kind = "transaction_add", outbox_id = r.outbox_id } }, queued)
    p:close()
  end)

  it("with always = true writes only to the outbox; the drainer posts", function()
    local p = program { always = true }
    local r = assert(p:order_placed(TOM, order("OB-3")))
    assert.is_true(r.queued)
    assert.equals(0, sb:state().requests["/v1.1/transaction/add"] or 0)
    drain(p)
    assert.equals(1, sb:bills("OB-3"))
    p:close()
  end)

  it("counts a bill the CRM already has (604) as delivered", function()
    local p = program { always = true }
    local r = assert(p:order_placed(TOM, order("OB-4")))
    -- The order reached the CRM some other way (a direct call that timed out after landing).
    local direct = program()
    assert(direct:order_placed(TOM, order("OB-4")))
    direct:close()
    local t = drain(p)
    assert.equals(1, t.delivered)
    assert.equals("delivered", assert(p.outbox:get(r.outbox_id)).state)
    assert.equals(1, sb:bills("OB-4"))
    p:close()
  end)

  it("without an outbox keeps today's behaviour: nil, err with the order id", function()
    local p = assert(loyalty.program { crm = { base_url = sb.url, username = "store.server", password = "server123",
                                               sleep = function() end } })
    assert(sb:faults { match = "/v1.1/transaction/add", count = 5, status = 503 })
    local r, err = p:order_placed(TOM, order("OB-5"))
    assert.is_nil(r)
    assert.equals("OB-5", err.order_id)
    p:close()
  end)

  it("does not queue a refusal: the CRM said no for good", function()
    local p = program()
    assert(sb:faults { match = "/v1.1/transaction/add", count = 1, action = "body_failure", code = 601 })
    local r, err = p:order_placed(TOM, order("OB-6"))
    assert.is_nil(r)
    assert.equals(601, err.code)
    assert.equals("OB-6", err.order_id)
    assert.equals(0, assert(p.outbox:status()).counts.pending)
    p:close()
  end)

  it("keeps one customer's writes in order: a queued order, then its return and reversal", function()
    local p = program({ always = true }, { skip_redemption_otp = true })
    local red = assert(loyalty.program { crm = { base_url = sb.url, username = "store.server",
      password = "server123" }, skip_redemption_otp = true }:redeem(TOM, { points = 500, order_id = "OB-7",
      cart = { total = 2597 } }))
    local o = order("OB-7", { redemption = { id = red.redemption_id, points = 500, value = red.value } })
    assert(p:order_placed(TOM, o))
    local ret = assert(p:order_returned(TOM, o))
    assert.is_true(ret.queued)
    assert.is_true(ret.reversal_queued)
    local t = drain(p)
    assert.equals(3, t.delivered)
    assert.equals(3, t.passes - 1) -- one entry per customer per pass, in order
    local st = sb:state()
    assert.is_true(st.redemptions[1].reversed)
    local types = {}
    for _, tx in ipairs(st.transactions) do types[#types + 1] = tx.type end
    assert.same({ "REGULAR", "RETURN" }, types)
    p:close()
  end)

  it("queues sign-ups (store first) and subscriptions, and replays them", function()
    local p = program { always = true }
    local becky = { mobile = "919812340000", firstname = "Becky", subscriptions = { email = true } }
    local r = assert(p:sign_up(becky, function() return "acct" end))
    assert.equals("acct", r.account)
    assert.is_true(r.queued)
    assert(p:subscribe(becky, { sms = true }))
    drain(p)
    local found
    for _, c in ipairs(sb:state().customers) do if c.mobile == "919812340000" then found = c end end
    assert.equals("Becky", found.firstname)
    local channels = {}
    for _, s in ipairs(found.subscriptions) do channels[s.channel:upper()] = tostring(s.is_subscribed) end
    assert.equals("1", channels.SMS)
    p:close()
  end)

  it("CRM-first sign-ups are never queued: the shopper must hear the answer", function()
    local p = program({ always = true }, { registration_crm_first = true })
    assert(sb:faults { match = "/v1.1/customer/add", count = 1, status = 503 })
    local r, err = p:sign_up({ mobile = "919812340001" }, function() return "acct" end)
    assert.is_nil(r)
    assert.equals(503, err.status)
    assert.equals(0, assert(p.outbox:status()).counts.pending)
    p:close()
  end)

  it("backs off, then dead-letters after max_attempts with the last error", function()
    local p = program { max_attempts = 3 }
    assert(sb:faults { match = "/v1.1/transaction/add", count = 100, status = 502 })
    local r = assert(p:order_placed(TOM, order("OB-8")))
    local base = math.floor(p.outbox.clock()) + 10
    local clock = base
    local opts = { max_attempts = 3, clock = function() return clock end, backoff_base_s = 10 }
    p.outbox.clock = opts.clock
    local t = drain(p, opts)
    assert.equals(1, t.failed)
    local e = assert(p.outbox:get(r.outbox_id))
    assert.is_true(e.next_at >= base + 5 and e.next_at <= base + 10, "backoff within [base/2, base]")
    assert.matches("502", e.last_error)
    clock = base + 11
    drain(p, opts)
    clock = base + 1000
    t = drain(p, opts)
    assert.equals(1, t.dead)
    local st = assert(p.outbox:status())
    assert.equals(1, st.counts.dead)
    assert.matches("502", st.dead[1].last_error)
    assert(sb:clear_faults())
    assert(p.outbox:retry(r.outbox_id))
    drain(p)
    assert.equals(1, sb:bills("OB-8"))
    p:close()
  end)

  it("uses the order's store till on replay (resolved from settings, never stored)", function()
    local p = program({ always = true }, {
      use_order_store_till = true,
      store_tills = { ["store.two"] = { username = "store.two.till", password = "till456" } },
    })
    local r = assert(p:order_placed(TOM, order("OB-9", { store_code = "store.two" })))
    assert.equals("store.two", assert(p.outbox:get(r.outbox_id)).till)
    drain(p)
    assert.equals("store.two.till", sb:state().transactions[1].attribution.till)
    p:close()
  end)

  it("keeps no secret in any outbox row", function()
    local p = program({ always = true }, {
      use_order_store_till = true,
      store_tills = { ["store.two"] = { username = "store.two.till", password = "till456" } },
    })
    assert(p:order_placed(TOM, order("OB-10", { store_code = "store.two" })))
    assert(p:order_placed(TOM, order("OB-11")))
    assert(p:sign_up({ mobile = "919812340002", firstname = "Sid" }, function() end))
    assert(p:subscribe(TOM, { email = false }))
    local rows = p.outbox.db:query("SELECT * FROM loyalty_outbox")
    assert.equals(4, #rows)
    local core = require "loyalty.core"
    local basic = core.basic_auth("store.server", "server123")
    for _, row in ipairs(rows) do
      for _, v in pairs(row) do
        local s = tostring(v)
        for _, secret in ipairs { "server123", "till456", basic, basic:sub(7), core.md5_hex("server123"),
                                  core.md5_hex("till456"), "Basic ", "password", "secret" } do
          assert.is_nil(s:find(secret, 1, true), "secret-like text in an outbox row: " .. secret)
        end
      end
    end
    p:close()
  end)

  it("reports a settings mistake in outbox with the key's name", function()
    local _, err = loyalty.program { crm = { base_url = sb.url, username = "u", password = "p" },
                                     outbox = { backend = "sqlite" } }
    assert.equals("outbox.path", err.key)
    _, err = loyalty.program { crm = { base_url = sb.url, username = "u", password = "p" },
                               outbox = { backend = "sqlite", path = "/tmp/x.db", alwayz = true } }
    assert.equals("outbox.alwayz", err.key)
    _, err = loyalty.program { crm = { base_url = sb.url, username = "u", password = "p" },
                               outbox = { backend = "mongo" } }
    assert.equals("outbox.backend", err.key)
  end)
end)

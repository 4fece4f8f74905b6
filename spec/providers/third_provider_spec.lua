-- Proof of the provider contract: a third provider defined entirely in spec/providers/tiny/, added
-- with one providers.register call, runs through the client, the program (summary, earn, redeem)
-- and the outbox (an order queued while its CRM is down, replayed when it is back, and a replay
-- that finds it already delivered). No file of the library names it.
local providers = require "loyalty.providers"
local tiny_server = require "providers.tiny.server"
local proc = require "outbox.helpers.proc"

describe("a third provider defined in the spec folder", function()
  local server, dir

  lazy_setup(function()
    providers.register("tiny", require "providers.tiny.provider")
    server = tiny_server.start()
    dir = proc.tmpdir()
  end)
  lazy_teardown(function()
    if server then server.stop() end
    proc.rmdir(dir)
  end)

  local function client(extra)
    local opts = { provider = "tiny", base_url = server.url, username = "shop-till", password = "tiny-secret-1",
                   max_attempts = 1, timeout_ms = 3000 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(require("loyalty").client(opts))
  end

  local function settings(extra)
    local s = { provider = "tiny", skip_redemption_otp = true, registration = false,
                crm = { base_url = server.url, username = "shop-till", password = "tiny-secret-1", shop = "web",
                        max_attempts = 1, timeout_ms = 3000 } }
    for k, v in pairs(extra or {}) do s[k] = v end
    return s
  end

  it("is listed by the registry and checked like the built-in ones", function()
    local names = table.concat(providers.names(), " ")
    assert.truthy(names:find("tiny", 1, true), names)
    assert.equal(require "providers.tiny.provider", assert(providers.get("tiny")))
    assert.has_error(function() providers.register("broken", { name = "broken" }) end)
  end)

  it("runs the client: a read and a write, with its request-id header and its own option", function()
    local c = client { shop = "kiosk" }
    local r = assert(c:member_get { id = "5550001" })
    assert.equal(1000, r.body.member.points)
    assert.matches("^T%d+$", r.request_id)
    local w = assert(c:order_create { member = "5550001", order_id = "C-1", total = 12.5 })
    assert.equal(12, w.body.order.points_earned)
    assert.equal("kiosk", server.state().orders["C-1"].shop)
    -- a refusal comes back in the one error shape; another provider's option is a config error
    local _, err = c:member_get { id = "404" }
    assert.equal("api", err.kind)
    assert.equal("NO_MEMBER", err.code)
    assert.is_true(err.not_found)
    c:close()
    local none, cerr = require("loyalty").client { provider = "tiny", base_url = server.url, username = "u",
                                                   password = "p", organisation = "ORG" }
    assert.is_nil(none)
    assert.equal("organisation", cerr.key)
    assert.matches("belongs to the crmcom provider", cerr.message, 1, true)
  end)

  it("runs the program's summary, earn and redeem", function()
    local program = assert(require("loyalty").program(settings()))
    local user = { mobile = "5550001" }
    local before = server.state().members["5550001"].points
    local s = assert(program:summary(user))
    assert.is_true(s.enrolled)
    assert.equal(before, s.points)
    assert.equal(0.01, s.point_value)
    assert.near(before * 0.01, s.value, 0.005)
    local earned = assert(program:order_placed(user, { id = "P-1", total = 40, lines = { { sku = "A", price = 40 } } }))
    assert.equal(40, earned.points_earned)
    assert.equal(before + 40, earned.balance)
    assert.equal("web", server.state().orders["P-1"].shop)
    local red = assert(program:redeem(user, { order_id = "P-2", points = 100, total = 50 }))
    assert.equal(100, red.points)
    assert.equal(before + 40 - 100, server.state().members["5550001"].points)
    -- given back when the order will not be placed
    local back = assert(program:cancel_redemption(user, "P-2"))
    assert.equal(100, back.points_reversed)
    assert.equal(before + 40, server.state().members["5550001"].points)
    program:close()
  end)

  it("queues an order while the CRM is down and replays it once it is back, then as already delivered", function()
    local program = assert(require("loyalty").program(settings { outbox = { path = dir .. "/outbox.db" } }))
    local user = { mobile = "5550001" }
    local before = server.state().members["5550001"].points
    server.down()
    local r = assert(program:order_placed(user, { id = "Q-1", total = 25, lines = { { sku = "B", price = 25 } } }))
    assert.is_true(r.queued)
    assert.equal("network", r.crm_error.kind)
    server.start()
    local drainer = require "loyalty.outbox.drainer"
    local totals = assert(drainer.run(program, program.outbox))
    assert.equal(1, totals.delivered)
    assert.equal(before + 25, server.state().members["5550001"].points)
    assert.equal("web", server.state().orders["Q-1"].shop)
    -- the same entry replayed: the CRM has the order (its policy's code), and a claimed one is looked up first
    local entry = assert(program.outbox:get(r.outbox_id))
    entry.attempts = 0 -- as if never claimed: replayed straight away
    local again = assert(drainer.deliver(program, entry))
    assert.is_true(again.already)
    assert.equal("DUPLICATE_ORDER", again.code)
    entry.attempts = 2
    local looked = assert(drainer.deliver(program, entry))
    assert.is_true(looked.already and looked.found)
    assert.equal(before + 25, server.state().members["5550001"].points, "a replay must not earn twice")
    program:close()
  end)
end)

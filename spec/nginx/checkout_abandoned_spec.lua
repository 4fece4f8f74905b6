-- The example storefront's checkout-abandoned hook: points redeemed for an order that is never
-- placed come back (BALANCE and ABANDONED, checked against the sandbox's ledger), once.
local http = require "support.http"
local sandbox = require "support.sandbox"
local support = require "nginx.support"

describe("example storefront: checkout abandoned", function()
  local sb, srv

  lazy_setup(function()
    sb, srv = support.start_storefront {
      transport = "proxy", workers = 2,
      env = { LOYALTY_CLIENT_KEY = sandbox.OAUTH_KEY, LOYALTY_CLIENT_SECRET = sandbox.OAUTH_SECRET },
    }
  end)
  lazy_teardown(function() support.stop_storefront(sb, srv) end)

  local function post(path, body, user)
    return assert(http.post(srv.url .. path, body, user and { ["X-Demo-User"] = user } or nil))
  end

  local function balance()
    for _, c in ipairs(assert(sb:state()).customers) do
      if c.mobile == sandbox.TOM.mobile then return c.loyalty_points end
    end
  end

  -- Two workers and no shared outbox: the shop passes the redeem reply it kept, so whichever
  -- worker answers can give the points back.
  it("gives the held points back, and a second call changes nothing", function()
    local before = balance()
    local c = { id = "AB-1", total = 4000, lines = { { sku = "SKU-AB", qty = 1, price = 4000, amount = 4000 } } }
    assert(post("/loyalty/otp", { points = 500 }, "tom").status == 200)
    local code = assert(sb:otp { mobile = sandbox.TOM.mobile })
    local red = post("/loyalty/redeem", { points = 500, otp = code, order_id = c.id, cart = c }, "tom")
    assert.equal(200, red.status)
    assert.equal(before - 500, balance())
    local kept = { redemption_id = red.json.redemption_id, points = red.json.points }
    local ab = post("/hooks/checkout-abandoned", { user = "tom", order_id = c.id, redemption = kept })
    assert.equal(200, ab.status)
    assert.is_true(ab.json.cancelled)
    assert.equal(500, ab.json.points_reversed)
    assert.equal(before, balance())
    assert.equal(before, ab.json.balance)
    local again = post("/hooks/checkout-abandoned", { user = "tom", order_id = c.id, redemption = kept })
    assert.equal(200, again.status)
    assert.is_true(again.json.already)
    assert.equal(before, balance())
    assert.equal(400, post("/hooks/checkout-abandoned", { user = "tom" }).status)
  end)
end)

-- The example storefront (examples/openresty) in nginx with two workers against the sandbox:
-- the whole shopper flow over HTTP, for each nginx transport.
local http = require "support.http"
local sandbox = require "support.sandbox"
local support = require "nginx.support"

local function cart(id, total)
  return {
    id = id, store_code = "store.one", total = total, shipping = 0, tax = 0,
    lines = { { sku = "SKU-" .. id, qty = 1, price = total, amount = total, categories = { "apparel" } } },
  }
end

for _, transport in ipairs { "socket", "proxy", "thread" } do
  describe("example storefront (" .. transport .. " transport)", function()
    local sb, srv

    lazy_setup(function()
      sb, srv = support.start_storefront {
        transport = transport, workers = 2,
        env = { LOYALTY_CLIENT_KEY = sandbox.OAUTH_KEY, LOYALTY_CLIENT_SECRET = sandbox.OAUTH_SECRET },
      }
    end)
    lazy_teardown(function() support.stop_storefront(sb, srv) end)

    local function get(path, user)
      return assert(http.get(srv.url .. path, user and { ["X-Demo-User"] = user } or nil))
    end

    local function post(path, body, user)
      return assert(http.post(srv.url .. path, body, user and { ["X-Demo-User"] = user } or nil))
    end

    it("shows the points summary as JSON and as a header fragment", function()
      local r = get("/loyalty/summary", "tom")
      assert.equal(200, r.status)
      assert.is_true(r.json.enrolled)
      assert.equal(2000, r.json.points)
      assert.is_string(r.json.tier)

      r = get("/loyalty/header?user=tom")
      assert.equal(200, r.status)
      assert.truthy(r.headers["content-type"]:match("^text/html"))
      assert.truthy(r.body:find("Hi Tom: 2,000 points", 1, true))
    end)

    it("still renders the header fragment when the CRM fails", function()
      assert(sb:faults { match = "/v1.1/customer/get", status = 500, count = 3 })
      local r = get("/loyalty/header", "rita")
      assert.equal(200, r.status)
      assert.truthy(r.body:find("Points unavailable", 1, true))
      assert(sb:clear_faults())
      assert.truthy(get("/loyalty/header", "rita").body:find("Hi Rita: 50 points", 1, true))
    end)

    it("refuses anonymous shoppers and malformed bodies", function()
      assert.equal(401, get("/loyalty/summary").status)
      local r = assert(http.request { method = "POST", url = srv.url .. "/loyalty/quote", body = "not json",
                                      headers = { ["X-Demo-User"] = "tom" } })
      assert.equal(400, r.status)
    end)

    it("quotes, sends an OTP and redeems, then earns on the order and takes a return", function()
      local c = cart("OR-" .. transport, 4000)
      local q = post("/loyalty/quote", { cart = c, points = 500 }, "tom")
      assert.equal(200, q.status)
      assert.is_true(q.json.allowed)
      assert.equal(500, q.json.points)

      local o = post("/loyalty/otp", { points = 500 }, "tom")
      assert.equal(200, o.status)
      local code = assert(sb:otp { mobile = sandbox.TOM.mobile })

      local bad = post("/loyalty/redeem", { points = 500, order_id = c.id, cart = c }, "tom")
      assert.equal(422, bad.status)
      assert.equal("refused", bad.json.error.kind)

      local red = post("/loyalty/redeem", { points = 500, otp = code, order_id = c.id, cart = c }, "tom")
      assert.equal(200, red.status)
      assert.equal(1500, get("/loyalty/summary", "tom").json.points)

      local placed = post("/hooks/order-placed", { user = "tom", order = c })
      assert.equal(200, placed.status)
      assert.is_true(placed.json.points_earned > 0)
      local after_order = get("/loyalty/summary", "tom").json.points
      assert.equal(1500 + placed.json.points_earned, after_order)

      local ret = post("/hooks/order-returned", { user = "tom", order = c, lines = c.lines })
      assert.equal(200, ret.status)
      assert.is_true(ret.json.points_deducted > 0)
      -- the earned points go; the redemption comes back when the worker knows the order's hold
      assert.equal(after_order - ret.json.points_deducted + ret.json.points_reversed,
                   get("/loyalty/summary", "tom").json.points)
    end)
  end)
end

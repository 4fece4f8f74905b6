-- The program's flows (not only the typed operations) on the providers' documented reply samples,
-- served verbatim (spec/samples/server.lua). The samples describe different customers, so only
-- what each reply itself states is checked: the value of a point is what the CRM says it pays.
local loyalty = require "loyalty"
local samples = require "samples.samples"

describe("program flows on documented samples", function()
  local srv
  lazy_setup(function()
    srv = samples.start {
      { "GET", "/cap/v1.1/customer/get", "capillary/v11_customer_get_no_root.http" },
      { "GET", "/cap/v1.1/points/isredeemable", "capillary/v11_points_isredeemable.http" },
      { "POST", "/cap/v1.1/transaction/add", "capillary/v11_transaction_add.http" },
    }
  end)
  lazy_teardown(function() if srv then srv:stop() end end)

  local function program()
    return assert(loyalty.program {
      crm = { base_url = srv.url .. "/cap", username = "store.server", password = "server123", max_attempts = 1,
              sleep = function() end },
      program_id = 1016, skip_redemption_otp = true,
    })
  end

  -- The isredeemable sample values the points it names ("points": 10) at 10 (ratio "1"): one
  -- point pays 1, whatever number of points the program asked about.
  it("summary and quote value points at the rate the isredeemable reply states (SHOWN=PAID)", function()
    local p = program()
    local s = assert(p:summary { mobile = "91900000000" })
    assert.equals(500, s.points) -- customer/get sample, without the response root
    assert.equals(1, s.point_value)
    assert.equals(500, s.value)
    local q = assert(p:quote_redemption({ mobile = "91900000000" }, { total = 100000 }, 300))
    assert.equals(1, q.point_value)
    assert.equals(300, q.value)
    p:close()
  end)

  -- transaction/add's documented reply has no points side effect; points earned are read off the
  -- balance change. The samples' customers differ (500 before, 106 after): a fall is no earning,
  -- and the result says it cannot tell rather than reporting -394 points earned.
  it("order_placed: a balance that fell over the order is no points earned (nil with a reason)", function()
    local p = program()
    local r = assert(p:order_placed({ mobile = "919999000001" },
      { id = "BILL99", total = 18000, lines = { { sku = "SKU1", qty = 1, price = 18000, amount = 18000 } } }))
    assert.equals(106, r.balance)
    assert.is_nil(r.points_earned)
    assert.matches("balance", r.points_earned_unknown)
    p:close()
  end)
end)

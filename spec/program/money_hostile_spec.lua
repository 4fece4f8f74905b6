-- Whatever the CRM answers about the value of points, summary and quote never raise and never
-- show a locally configured guess: the value is the CRM's, or unknown with the reason.
local loyalty = require "loyalty"
local fake = require "support.fake_transport"

local CUSTOMER = [[{ "response": { "status": { "success": "true", "code": 200, "message": "Success" },
  "customers": { "customer": [ { "mobile": "919999000001", "loyalty_points": "2000", "current_slab": "SILVER",
    "item_status": { "success": "true", "code": "1000", "message": "ok" } } ] } } }]]

local function redeemable(fields)
  local parts = {}
  for k, v in pairs(fields) do parts[#parts + 1] = string.format("%q: %s", k, v) end
  return [[{ "response": { "status": { "success": "true", "code": 200, "message": "Success" },
    "points": { "redeemable": { "mobile": "919999000001", "is_redeemable": "true", ]] .. table.concat(parts, ", ") ..
    [[, "item_status": { "success": "true", "code": 800, "message": "ok" } } } } }]]
end

local function program(replies)
  local events = {}
  local p = assert(loyalty.program {
    crm = { base_url = "http://crm.test", username = "u", password = "p", sleep = function() end,
            transport = fake.new(function(req)
              if req.url:find("/customer/get", 1, true) then return { body = CUSTOMER } end
              return table.remove(replies, 1) or { body = replies.last }
            end) },
    rules = "examples/rules", program_id = 1016,
    log = function(_, event, f) events[#events + 1] = { event = event, fields = f } end,
  })
  return p, events
end

describe("the value of points from hostile or odd CRM answers", function()
  local cases = {
    { name = "ratio only", fields = { points_currency_ratio = '"0.5"' }, rate = 0.5 },
    { name = "value for the points asked", fields = { points = 2000, points_redeem_value = 1000 }, rate = 0.5 },
    { name = "zero ratio", fields = { points_currency_ratio = '"0"' } },
    { name = "negative value", fields = { points = 2000, points_redeem_value = -5 } },
    { name = "text", fields = { points_currency_ratio = '"lots"' } },
    { name = "an object", fields = { points_currency_ratio = '{"a":1}' } },
    { name = "huge", fields = { points_currency_ratio = "1e300" } },
    { name = "nothing", fields = { input_type = '"points"' } },
  }
  for _, case in ipairs(cases) do
    it(case.name, function()
      local p = program { last = redeemable(case.fields) }
      local ok, s = pcall(p.summary, p, { mobile = "919999000001" })
      assert.is_true(ok, tostring(s))
      assert.is_table(s)
      if case.rate then
        assert.equals(case.rate, s.point_value)
        assert.equals(2000 * case.rate, s.value)
      else
        assert.is_nil(s.value) -- never the rules' 0.25 x 2000
        assert.is_string(s.value_unknown)
        assert.is_false(s.can_redeem)
      end
      local q, qerr = p:quote_redemption({ mobile = "919999000001" }, { total = 1047, lines = {} })
      assert.is_true(q ~= nil or qerr ~= nil)
      if q and q.allowed then assert.is_true(q.value <= 1047 * 0.5 + 1e-9) end
      p:close()
    end)
  end

  it("a CRM reply that cannot be read at all is an error, not a guess", function()
    local p = program { last = "not json" }
    local s, err = p:summary { mobile = "919999000001" }
    assert.is_table(s)
    assert.is_nil(s.value)
    assert.matches("did not say", s.value_unknown)
    assert.is_nil(err)
    p:close()
  end)
end)

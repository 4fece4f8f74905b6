-- v1.1 batches: any failed item next to successful ones makes the result partial and is named,
-- whatever the API-level code says: 201, or the documented "200 Some requests have failed due to
-- errors" (S-V11 _organization.md). Through the program: subscribe and register report it.
local loyalty = require "loyalty"
local fake = require "support.fake_transport"

local function client_with(replies)
  return assert(loyalty.client { base_url = "http://crm.test", username = "store.server", password = "server123",
                                 transport = fake.new(replies), sleep = function() end })
end

local SUBS_200 = [[{ "response": { "status": { "success": "true", "code": "200",
  "message": "Some requests have failed due to errors", "total": "2", "success_count": "1" },
  "subscriptions": { "subscription": [
    { "mobile": "919999000001", "channel": "SMS", "is_subscribed": "0",
      "item_status": { "success": "true", "code": "1000", "message": "Subscription successfully updated" } },
    { "mobile": "919999000001", "channel": "EMAIL", "is_subscribed": "0",
      "item_status": { "success": "false", "code": "1104", "message": "Invalid subscription status" } } ] } } }]]

local TX_ONE_FAILED = [[{ "response": { "status": { "success": "true", "code": 200, "message": "Success" },
  "transactions": { "transaction": [
    { "id": 1, "number": "B-1", "item_status": { "success": "true", "code": 600, "message": "Transaction added" } },
    { "number": "B-2", "item_status": { "success": "false", "code": 601, "message": "Invalid amount" } } ] } } }]]

describe("v1.1 batch partial results", function()
  it("code 200 'Some requests have failed' is partial and names the failed item", function()
    local c = client_with { { body = SUBS_200 } }
    local r = assert(c:customer_subscriptions { { mobile = "919999000001", channel = "SMS" },
                                                { mobile = "919999000001", channel = "EMAIL" } })
    assert.is_true(r.partial)
    assert.equals(1, #r.failed)
    assert.equals(1104, r.failed[1].code)
    assert.matches("channel=EMAIL", r.failed[1].key)
  end)

  it("a failed item beside a success is partial even under 'Success'", function()
    local c = client_with { { body = TX_ONE_FAILED } }
    local r = assert(c:transaction_add { { number = "B-1", amount = 1 }, { number = "B-2", amount = -1 } })
    assert.is_true(r.partial)
    assert.equals("number=B-2", r.failed[1].key)
    assert.equals(601, r.failed[1].code)
  end)

  it("the program's subscribe reports a failed opt-out, never 'done'", function()
    local events = {}
    local p = assert(loyalty.program {
      crm = { base_url = "http://crm.test", username = "store.server", password = "server123",
              transport = fake.new { { body = SUBS_200 } }, sleep = function() end },
      log = function(_, event, fields) events[#events + 1] = { event = event, fields = fields } end,
    })
    local r = assert(p:subscribe({ mobile = "919999000001" }, { sms = false, email = false }))
    assert.is_true(r.partial)
    assert.equals(1, #r.failed)
    assert.matches("channel=EMAIL", r.failed[1].item)
    assert.same({ 1104, "Invalid subscription status" }, { r.failed[1].code, r.failed[1].message })
    assert.equals("subscription_partial", events[#events].event)
    p:close()
  end)
end)

-- Capillary behaviours the docs decide (not the sandbox): 889's two meanings, replies with and
-- without the response root, Content-Type on GETs, isredeemable's mandatory program_id.
local loyalty = require "loyalty"
local fake = require "support.fake_transport"

local function v11_failure(code, message)
  return { status = 200, body = ([[{ "response": { "status": { "success": "false", "code": 500,
    "message": "All requests have failed due to errors" }, "responses": { "points": { "mobile": "919999000001",
    "item_status": { "success": "false", "code": %d, "message": %q } } } } }]]):format(code, message) }
end

local function client_with(replies)
  local t = fake.new(replies)
  return assert(loyalty.client { base_url = "http://crm.test", username = "store.server", password = "server123",
                                 transport = t, sleep = function() end, max_attempts = 3 }), t
end

local REDEEM = { points_redeemed = 100, customer = { mobile = "919999000001" }, external_reference_number = "r-1" }

describe("capillary as documented", function()
  it("889 for invalid identifiers is final; 889 for a failed connection is retried", function()
    local invalid = "Points processing failed. Reason: Invalid Customer identifiers passed"
    local c, t = client_with { v11_failure(889, invalid) }
    local _, err = c:points_redeem(REDEEM)
    assert.equals(889, err.code)
    assert.is_false(err.retryable)
    assert.equals(1, #t.requests)
    c, t = client_with { v11_failure(889, "Points processing failed. Reason: Failed to Connect to Service"),
                         v11_failure(889, "Points processing failed. Reason: Failed to Connect to Service"),
                         v11_failure(889, "Points processing failed. Reason: Failed to Connect to Service") }
    _, err = c:points_redeem(REDEEM)
    assert.is_true(err.retryable)
    assert.equals(3, #t.requests)
    c, t = client_with { v11_failure(889, "Points processing failed") }
    _, err = c:points_redeem(REDEEM)
    assert.is_false(err.retryable) -- no reason given: not retried blindly
    assert.equals(1, #t.requests)
  end)

  it("reads a failure without the response root the same as with it", function()
    local body = [[{ "status": { "success": "false", "code": 500, "message": "All requests have failed" },
      "customers": { "customer": { "mobile": "1", "item_status": { "success": "false", "code": "816",
      "message": "Customer not found for organization" } } } }]]
    local c = client_with { { status = 400, body = body }, { status = 200, body = body } }
    local _, e1 = c:customer_get { mobile = "1" }
    local _, e2 = c:customer_get { mobile = "1" }
    assert.same({ "api", 816, "api", 816 }, { e1.kind, e1.code, e2.kind, e2.code })
    assert.is_false(e1.retryable)
  end)

  it("refuses a body that is neither shape as a decode error", function()
    local c = client_with { { status = 200, body = '{"customers": {}}' }, { status = 200, body = '{"customers": {}}' },
                            { status = 200, body = '{"customers": {}}' } }
    local _, err = c:customer_get { mobile = "1" }
    assert.equals("decode", err.kind)
  end)

  it("sends Content-Type: application/json on GETs as well as POSTs", function()
    local ok = { status = 200, body = [[{"response":{"status":{"success":"true","code":200,"message":"Success"},
      "customers":{"customer":[]}}}]] }
    local c, t = client_with { ok, ok }
    assert(c:customer_get { mobile = "1" })
    assert.equals("application/json", fake.header(t.requests[1], "Content-Type"))
    assert(c:customer_update { mobile = "1", firstname = "A" })
    local n = 0
    for _, line in ipairs(t.requests[2].headers) do
      if line:lower():match("^content%-type:") then n = n + 1 end
    end
    assert.equals(1, n) -- once, not twice
  end)
end)

describe("the outbox's return lookup pages customer/transactions as documented", function()
  local capillary_program = require "loyalty.providers.capillary.storefront"
  local core = require "loyalty.core"

  local RETURN = { type = "return", number = "B-1", customer = { mobile = "1" },
                   custom_fields = { field = { { name = capillary_program.RETURN_REF_FIELD, value = "ref-1" } } } }

  -- A page of `rows` REGULAR rows (ids from `first`), with count and start as the docs show them.
  local function page(first, rows, count)
    local list = {}
    for i = 1, rows do list[i] = { id = tostring(first + i - 1), number = "B-1", type = "REGULAR" } end
    return { status = 200, body = core.json_encode { response = {
      status = { success = "true", code = 200, message = "Success" },
      customer = { mobile = "1", count = count, start = list[1] and list[1].id or "", rows = tostring(rows),
                   transactions = { transaction = #list > 0 and list or core.empty_array },
                   item_status = { success = "true", code = "1052", message = "Transactions fetched successfully" } },
    } } }
  end

  it("stops when offset + rows reaches count, without asking for an empty page", function()
    local c, t = client_with { page(1, 100, 100) }
    assert.is_false(capillary_program.find_return(c, RETURN))
    assert.equals(1, #t.requests)
    c, t = client_with { page(1, 100, 150), page(101, 50, 150) }
    assert.is_false(capillary_program.find_return(c, RETURN))
    assert.equals(2, #t.requests)
    assert.matches("offset=100", t.requests[2].url, 1, true)
  end)

  it("a server that ignores offset is an error, not a silent 'not there'", function()
    local c = client_with { page(1, 100, 500), page(1, 100, 500) }
    local found, err = capillary_program.find_return(c, RETURN)
    assert.is_nil(found)
    assert.matches("ignored offset", err.message)
  end)
end)

-- Auth, attribution, request ids, injected faults, malformed requests and the customer lock.
local support = require("support.sandbox")
local http = require("support.http")

describe("sandbox auth, faults and robustness", function()
  local sb
  lazy_setup(function() sb = support.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)
  before_each(function() assert(sb:reset()) end)

  local GET_TOM = "/v1.1/customer/get?mobile=919999000001"

  it("Basic auth is checked: a wrong password answers 401 with the v1.1 envelope", function()
    local ok = sb:get(GET_TOM, { Authorization = http.basic("store.server", "server123") })
    assert.equal(200, ok.status)
    local r = sb:get(GET_TOM, { Authorization = http.basic("store.server", "wrong") })
    assert.equal(401, r.status)
    assert.equal("false", r.json.response.status.success)
    assert.equal(401, r.json.response.status.code)
    assert.equal(401, sb:get(GET_TOM, {}).status)
    local second = sb:get(GET_TOM, { Authorization = http.basic("store.two.till", "till456") })
    assert.equal(200, second.status)
    local v2 = sb:get("/v2/customers/lookup?source=INSTORE&identifierName=mobile&identifierValue=1", {})
    assert.equal(401, v2.status)
    assert.equal(401, v2.json.errors[1].code)
  end)

  it("OAuth: token/generate shape, the three token headers, unknown tokens and bad secrets", function()
    local token, r = sb:token()
    assert.equal(200, r.status)
    assert.equal(60, r.json.data.ttlSeconds)
    assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+$", token)
    assert.equal(require("cjson").null, r.json.errors)
    local other = sb:token()
    assert.are_not.equal(token, other)
    assert.equal(200, sb:get(GET_TOM, { ["X-CAP-API-OAUTH-TOKEN"] = token }).status)
    assert.equal(200, sb:get(GET_TOM, { ["CAP-API-ACCESS-TOKEN"] = token }).status)
    assert.equal(200, sb:get(GET_TOM, { Authorization = "Bearer " .. token }).status)
    assert.equal(401, sb:get(GET_TOM, { ["X-CAP-API-OAUTH-TOKEN"] = "nope" }).status)
    local _, bad = sb:token("sandbox-key", "wrong")
    assert.equal(401, bad.status)
    assert.is_table(bad.json.errors)
    assert.equal(3, sb:state().token_generations)
  end)

  it("a token past its ttlSeconds answers 401", function()
    local token, r = sb:token(support.SHORT_KEY, support.SHORT_SECRET)
    assert.equal(2, r.json.data.ttlSeconds)
    assert.equal(200, sb:get(GET_TOM, { ["X-CAP-API-OAUTH-TOKEN"] = token }).status)
    require("socket").sleep(3.1)
    assert.equal(401, sb:get(GET_TOM, { ["X-CAP-API-OAUTH-TOKEN"] = token }).status)
  end)

  it("attribution headers are recorded on the transactions and customers they attribute", function()
    local token = sb:token()
    local function add(number, headers, mobile)
      headers["X-CAP-API-OAUTH-TOKEN"] = token
      return sb:post("/v1.1/transaction/add", { root = { transaction = { type = "regular", number = number,
        amount = 100, customer = { mobile = mobile or "919999000001" } } } }, headers)
    end
    add("A1", { ["X-CAP-API-ATTRIBUTION-ENTITY-TYPE"] = "STORE_CODE",
      ["X-CAP-API-ATTRIBUTION-ENTITY-CODE"] = "store.two" })
    add("A2", { ["X-CAP-API-ATTRIBUTION-TILL-CODE"] = "store.two.till" })
    add("A3", {}, "919555000000")
    local by = {}
    for _, t in ipairs(sb:state().transactions) do by[t.number] = t.attribution end
    assert.same({ "STORE_CODE", "store.two", "store.two" }, { by.A1.entity_type, by.A1.entity_code, by.A1.store })
    assert.same({ "store.two.till", "store.two" }, { by.A2.till, by.A2.store })
    assert.same({ "default", "store.server" }, { by.A3.via, by.A3.till })
    for _, c in ipairs(sb:state().customers) do
      if c.mobile == "919555000000" then assert.equal("store.server", c.registered_till) end
    end
  end)

  it("every reply carries a fresh X-Cap-Requestid", function()
    local a, b = sb:get(GET_TOM), sb:get("/v1.1/nothing")
    assert.matches("^%x+$", a.headers["x-cap-requestid"])
    assert.are_not.equal(a.headers["x-cap-requestid"], b.headers["x-cap-requestid"])
  end)

  it("status faults fire `count` times on matching paths, with Retry-After", function()
    assert(sb:faults { match = "/v1.1/transaction/add", count = 2, status = 503 })
    assert(sb:faults { match = "/v1.1/customer", method = "GET", status = 429, retry_after = 1 })
    local body = { root = { transaction = { type = "regular", number = "F1", amount = 10,
      customer = { mobile = "919999000001" } } } }
    local r1 = sb:post("/v1.1/transaction/add", body)
    assert.equal(503, r1.status)
    assert.equal(503, r1.json.response.status.code)
    assert.equal(503, sb:post("/v1.1/transaction/add", body).status)
    assert.equal(200, sb:post("/v1.1/transaction/add", body).status)
    assert.equal(200, sb:post("/v1.1/customer/update", { root = { customer = { mobile = "919999000001" } } }).status)
    local limited = sb:get(GET_TOM)
    assert.equal(429, limited.status)
    assert.equal("1", limited.headers["retry-after"])
    assert.equal(200, sb:get(GET_TOM).status)
    local v2 = assert(sb:faults { match = "/v2/", status = 521 })
    assert.equal(1, v2.faults[1].count)
    local r = sb:get("/v2/customers/lookup?source=INSTORE&identifierName=mobile&identifierValue=919999000001")
    assert.equal(521, r.status)
    assert.equal(521, r.json.errors[1].code)
  end)

  it("malformed, empty, body_failure, truncated and drop faults", function()
    local P = "/v1.1/customer/get"
    assert(sb:faults { { match = P, action = "malformed" }, { match = P, action = "empty" },
      { match = P, action = "body_failure" }, { match = P, action = "truncated" }, { match = P, action = "drop" } })
    local m = sb:get(GET_TOM)
    assert.equal(200, m.status)
    assert.is_nil(m.json)
    local e = sb:get(GET_TOM)
    assert.same({ 200, "" }, { e.status, e.body })
    local f = sb:get(GET_TOM)
    assert.equal(200, f.status)
    assert.equal("false", f.json.response.status.success)
    local t, terr = http.get(sb.url .. GET_TOM, { Authorization = support.BASIC })
    assert.is_true(t == nil or t.json == nil, tostring(terr))
    local d, derr = http.get(sb.url .. GET_TOM, { Authorization = support.BASIC })
    assert.is_nil(d)
    assert.is_string(derr)
    assert.equal(200, sb:get(GET_TOM).status)
    local state = sb:state()
    for _, fault in ipairs(state.faults) do assert.equal(0, fault.left) end
  end)

  it("a delay fault delays then answers normally", function()
    assert(sb:faults { match = "/v1.1/customer/get", action = "delay", ms = 50 })
    assert.equal(200, sb:get(GET_TOM).status)
  end)

  it("rejects bad fault specs", function()
    local ok, err = sb:faults { action = "explode" }
    assert.is_nil(ok)
    assert.matches("unknown fault action", err)
  end)

  it("malformed requests get envelopes, never a crash", function()
    local bad = sb:post("/v1.1/customer/add", nil, { Authorization = support.BASIC })
    assert.equal(400, bad.status)
    assert.equal(400, bad.json.response.status.code)
    local junk = http.request { method = "POST", url = sb.url .. "/v1.1/transaction/add", body = "{not json",
      headers = { Authorization = support.BASIC } }
    assert.equal(400, junk.status)
    assert.equal("false", junk.json.response.status.success)
    assert.equal(400, sb:post("/v1.1/transaction/add", { nothing = true }).json.response.status.code)
    assert.equal(400, sb:post("/v1.1/transaction/add", { root = "x" }).status)
    local array_body = http.request { method = "POST", url = sb.url .. "/v2/otp/generate", body = "[1,2]",
      headers = { Authorization = support.BASIC } }
    assert.equal(400, array_body.status)
    assert.is_table(array_body.json.errors)
    local wrong_method = sb:post(GET_TOM, {})
    assert.equal(405, wrong_method.status)
    assert.equal(405, wrong_method.json.response.status.code)
    local v2_method = http.request { method = "DELETE", url = sb.url .. "/v2/customers/343445001",
      headers = { Authorization = support.BASIC } }
    assert.equal(405, v2_method.status)
    assert.equal(405, v2_method.json.errors[1].code)
    local unknown = sb:get("/v1.1/nothing/here")
    assert.equal(404, unknown.status)
    assert.equal(404, unknown.json.response.status.code)
    assert.equal(404, sb:get("/elsewhere").status)
    local huge = http.request { method = "POST", url = sb.url .. "/v1.1/customer/add",
      body = string.rep("x", 5 * 1024 * 1024), headers = { Authorization = support.BASIC } }
    assert.equal(413, huge.status)
    assert.equal(413, huge.json.response.status.code)
    local odd = sb:post("/v1.1/points/redeem", { root = { redeem = { { points_redeemed = "abc",
      customer = { mobile = { nested = true } } } } } })
    assert.equal(400, odd.status) -- 816 customer not found: HTTP 400 (S-DOCS redeem-points)
    assert.equal("false", odd.json.response.status.success)
    assert.equal(200, sb:get(GET_TOM).status)
  end)

  it("a write for a customer whose lock is held answers 521 (v1.1 and v2)", function()
    assert(sb:hold({ mobile = "919999000001" }, 3000))
    local r = sb:post("/v1.1/transaction/add", { root = { transaction = { type = "regular", number = "L1",
      amount = 100, customer = { mobile = "919999000001" } } } })
    assert.equal(521, r.status)
    assert.equal(521, r.json.response.status.code)
    local rev = sb:post("/v2/customers/343445001?source=INSTORE", {})
    assert.equal(405, rev.status)
    local put = sb:put("/v2/customers/343445001?source=INSTORE", { profiles = { { firstName = "T" } } })
    assert.equal(521, put.status)
    assert.equal(521, put.json.errors[1].code)
    -- the bill number was not consumed by the rejected write, and reads still work
    assert.equal(200, sb:get(GET_TOM).status)
    assert.equal(602, sb:get("/v1.1/transaction/get?number=L1").json.response.transactions.transaction[1]
      .item_status.code)
  end)

  it("state counts requests per path and reset restores the seed", function()
    sb:get(GET_TOM)
    sb:get(GET_TOM)
    local s = sb:state()
    assert.equal(2, s.requests["/v1.1/customer/get"])
    assert.equal(3, #s.customers)
    sb:post("/v1.1/transaction/add", { root = { transaction = { type = "regular", number = "R1", amount = 100,
      customer = { mobile = "919888000000" } } } })
    assert.equal(4, #sb:state().customers)
    assert(sb:reset())
    s = sb:state()
    assert.equal(3, #s.customers)
    assert.same({}, s.transactions)
    assert.is_nil(s.requests["/v1.1/customer/get"])
  end)

  it("the latency knob is accepted and reported", function()
    assert(sb:latency(5))
    assert.equal(5, sb:state().latency_ms)
    assert.equal(200, sb:get(GET_TOM).status)
  end)
end)

-- The shared dispatcher and the provider handlers it calls (lua/loyalty/sandbox/server.lua): which
-- provider owns a path, what every provider's server module supplies, and the replies the dispatcher
-- gives alike on both CRMs' paths (request id, latency, faults, the envelope of the path called).
local support = require("support.sandbox")
local http = require("support.http")

local PROVIDERS = { capillary = "loyalty.sandbox.capillary.server", crmcom = "loyalty.sandbox.crmcom.server" }

describe("sandbox dispatcher", function()
  describe("provider modules", function()
    for name, module in pairs(PROVIDERS) do
      it(name .. " supplies the handler contract", function()
        local p = require(module)
        for _, fn in ipairs { "owns", "handle", "error_reply", "body_failure", "init", "reset" } do
          assert.is_function(p[fn], name .. "." .. fn)
        end
        for key, knob in pairs(p.knobs or {}) do
          assert.matches("^[A-Z]+ /sandbox/", key)
          assert.is_function(knob)
        end
      end)
    end

    it("each path has at most one owner; other paths fall to Capillary v1.1", function()
      local cap, crm = require(PROVIDERS.capillary), require(PROVIDERS.crmcom)
      local cases = {
        ["/v1.1/customer/get"] = "capillary", ["/v2/customers"] = "capillary",
        ["/v3/oauth/token/generate"] = "capillary", ["/crmapi/rest/v2/products/synchronise"] = "crmcom",
        ["/nowhere"] = false, ["/crmapi/rest/v1/x"] = false,
      }
      for path, owner in pairs(cases) do
        assert.equal(owner == "capillary", cap.owns(path), path)
        assert.equal(owner == "crmcom", crm.owns(path), path)
      end
    end)
  end)

  describe("running", function()
    local sb
    lazy_setup(function() sb = support.start() end)
    lazy_teardown(function() if sb then sb:stop() end end)
    before_each(function() assert(sb:reset()) end)

    local SHOW = "/crmapi/rest/v2/rewards_participants/show"

    it("every reply carries a request id, knobs and both CRMs' paths alike", function()
      for _, path in ipairs { "/sandbox/state", "/v1.1/customer/get?mobile=919999000001", SHOW, "/nowhere" } do
        local r = assert(http.get(sb.url .. path, {}))
        assert.matches("^%x+$", r.headers["x-cap-requestid"], path)
      end
    end)

    it("a status fault answers in the envelope of the path's provider", function()
      assert(sb:faults { { match = "/v1.1/", status = 503, count = 1 }, { match = "/v2/", status = 503, count = 1 },
                         { match = "/crmapi/", status = 503, code = "BUSY", count = 1 } })
      local v11 = sb:get("/v1.1/customer/get?mobile=919999000001")
      assert.equal(503, v11.status)
      assert.equal("false", v11.json.response.status.success)
      local v2 = sb:get("/v2/customers/lookup?source=INSTORE&identifierName=mobile&identifierValue=919999000001")
      assert.equal(503, v2.status)
      assert.equal(503, v2.json.errors[1].code)
      local crm = sb:post(SHOW, { token = "x" })
      assert.equal(503, crm.status)
      assert.equal("BUSY", crm.json.status.code)
    end)

    it("apply_drop drops what a route's handler answers, not a Capillary refusal", function()
      assert(sb:faults { match = "/v1.1/customer/get", action = "apply_drop", count = 2 })
      local refused = assert(http.get(sb.url .. "/v1.1/customer/get?mobile=919999000001", {}))
      assert.equal(401, refused.status)
      local dropped, err = http.get(sb.url .. "/v1.1/customer/get?mobile=919999000001",
                                    { Authorization = http.basic("store.server", "server123") })
      assert.is_nil(dropped)
      assert.is_truthy(err)
    end)

    it("the latency knob delays both CRMs' paths", function()
      assert(sb:latency(150))
      local socket = require("socket")
      for _, path in ipairs { "/v1.1/customer/get?mobile=919999000001", SHOW } do
        local t0 = socket.gettime()
        http.get(sb.url .. path, {})
        assert.is_true(socket.gettime() - t0 >= 0.14, path)
      end
    end)
  end)
end)

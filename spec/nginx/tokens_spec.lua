-- Two nginx workers share one OAuth token through the lua_shared_dict: a burst of shopper
-- requests on a cold storefront makes exactly one token request, whichever worker serves them.
local sandbox = require "support.sandbox"
local support = require "nginx.support"

for _, transport in ipairs { "socket", "proxy", "thread" } do
  describe("OAuth token shared by two workers (" .. transport .. ")", function()
    local sb, srv

    lazy_setup(function()
      sb, srv = support.start_storefront({
        transport = transport, workers = 2,
        env = { LOYALTY_CLIENT_KEY = sandbox.OAUTH_KEY, LOYALTY_CLIENT_SECRET = sandbox.OAUTH_SECRET },
        server_extra = "add_header X-Worker $pid always;",
      }, { workers = 2 })
    end)
    lazy_teardown(function() support.stop_storefront(sb, srv) end)

    it("makes one token request for a burst of calls on both workers", function()
      -- A slow token endpoint: every request of the burst arrives while the refresh is running.
      assert(sb:faults { match = "/v3/oauth/token/generate", action = "delay", ms = 300, count = 5 })
      local urls = {}
      for i = 1, 40 do urls[i] = srv.url .. "/loyalty/summary?user=" .. (i % 2 == 0 and "tom" or "rita") end
      local results = support.concurrent_get(urls)
      local workers, n = {}, 0
      for _, r in ipairs(results) do
        assert.equal(200, r.status)
        assert.is_true(r.json.enrolled)
        if r.worker and not workers[r.worker] then
          workers[r.worker] = true
          n = n + 1
        end
      end
      assert.equal(2, n) -- both workers served (reuseport spreads the 40 connections)
      local state = assert(sb:state())
      assert.equal(1, state.token_generations)
      assert.equal(40, state.requests["/v1.1/customer/get"])

      -- and later calls keep using it
      results = support.concurrent_get(urls)
      for _, r in ipairs(results) do assert.equal(200, r.status) end
      assert.equal(1, assert(sb:state()).token_generations)
    end)
  end)
end

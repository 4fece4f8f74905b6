-- A slow CRM call must not hold up other requests on the same nginx worker. With one worker, a
-- summary whose CRM call the sandbox delays is started in the background; while it is in flight
-- a page that never calls the CRM must come back first. A handler that calls libcurl on the
-- event loop serves as the control: there the page waits for the slow call.
local http = require "support.http"
local sandbox = require "support.sandbox"
local support = require "nginx.support"

-- Test-only: the blocking libcurl transport on the event loop (never do this), and the time
-- each response's header left nginx.
local SERVER_EXTRA = [[
    add_header X-Sent-At $msec always;
    location = /blocking/summary { content_by_lua_block {
        local client = assert(require("loyalty.client").new {
            base_url = os.getenv("LOYALTY_BASE_URL"), username = "store.server", password = "server123",
            transport = require("loyalty.transport.curl").new {},
        })
        local r, err = client:customer_get { mobile = ngx.var.arg_mobile }
        ngx.say(r and "ok" or tostring(err))
    } }
]]

local DELAY_MS = 1500

for _, case in ipairs {
  { transport = "socket", path = "/loyalty/summary?user=tom" },
  { transport = "proxy", path = "/loyalty/summary?user=tom" },
  { transport = "thread", path = "/loyalty/summary?user=tom" },
  { transport = "proxy", path = "/blocking/summary?mobile=" .. sandbox.TOM.mobile, blocking = true },
} do
  local name = case.blocking and "a blocking libcurl handler (control)" or ("the " .. case.transport .. " transport")
  describe("one nginx worker with " .. name, function()
    local sb, srv, bg

    lazy_setup(function()
      sb = sandbox.start()
      local err
      srv, err = support.launch.start {
        crm_url = sb.url, transport = case.transport, workers = 1, server_extra = SERVER_EXTRA,
      }
      assert(srv, err)
      -- warm up: program created, connections open
      assert.equal(200, assert(http.get(srv.url .. case.path)).status)
    end)

    lazy_teardown(function()
      if bg then bg:cleanup() end
      if srv then srv:stop() end
      if sb then sb:stop() end
    end)

    it(case.blocking and "makes other requests wait for the slow CRM call"
                      or "serves other requests while a CRM call is slow", function()
      local before = assert(sb:state()).requests["/v1.1/customer/get"] or 0
      assert(sb:faults { match = "/v1.1/customer/get", action = "delay", ms = DELAY_MS, count = 1 })
      bg = support.background_get(srv.url .. case.path)
      -- the slow call has reached the CRM: the worker is now waiting on it
      assert.truthy(support.eventually(function()
        return (assert(sb:state()).requests["/v1.1/customer/get"] or 0) > before
      end))

      local ping = assert(http.get(srv.url .. "/ping"))
      local slow_done_when_ping_returned = bg:finished()
      local status, _, slow_headers = bg:wait(30)
      assert.equal(200, ping.status)
      assert.equal(200, status)
      local ping_at, slow_at = tonumber(ping.headers["x-sent-at"]), tonumber(slow_headers["x-sent-at"])
      if case.blocking then
        assert.is_true(ping_at >= slow_at)
      else
        assert.is_false(slow_done_when_ping_returned)
        assert.is_true(ping_at < slow_at)
      end
    end)
  end)
end

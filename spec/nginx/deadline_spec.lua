-- One deadline per call inside nginx: with the CRM hanging, a client call with retries ends
-- after its deadline (thread transport: it honours req.timeout_ms) or after at most one of the
-- proxy location's fixed timeouts (proxy transport), never attempts x timeout.
local runner = require "loyalty.ngx.runner"
local http = require "support.http"
local sandbox = require "support.sandbox"
local support = require "nginx.support"
local socket = require "socket"

local HTTP = [[
lua_shared_dict loyalty_tokens 1m;
init_by_lua_block { require("loyalty.ngx").configure { transport = "proxy" } }
server {
  listen 127.0.0.1:${port};
  include PROXY_CONF;
  location = /call { content_by_lua_block {
    local cjson = require "cjson.safe"
    local a = ngx.req.get_uri_args()
    local transport = require("loyalty.ngx." .. a.via).new {}
    local client = assert(require("loyalty.client").new {
      base_url = a.base, username = "store.server", password = "server123", transport = transport,
      max_attempts = 3, timeout_ms = tonumber(a.timeout_ms), backoff_base_ms = 10,
    })
    local t0 = ngx.now()
    local r, err = client:request { method = "GET", path = "/v1.1/customer/get", version = "v1.1",
                                    query = { mobile = a.mobile } }
    ngx.update_time()
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode { ok = r ~= nil, kind = err and err.kind, attempts = err and err.attempts,
                           deadline_reached = err and err.deadline_reached or false, took = ngx.now() - t0 })
  } }
}
]]

describe("nginx: one deadline per call", function()
  local sb, srv, conf

  lazy_setup(function()
    sb = sandbox.start()
    conf = os.tmpname()
    local text = assert(runner.read_file(support.root .. "/examples/openresty/loyalty_proxy.conf"))
    local f = assert(io.open(conf, "wb"))
    f:write((text:gsub("proxy_read_timeout 10s;", "proxy_read_timeout 1s;")))
    f:close()
    local err
    srv, err = runner.start { main = "thread_pool loyalty threads=4;", http = HTTP:gsub("PROXY_CONF", conf) }
    assert(srv, err)
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
    if conf then os.remove(conf) end
  end)

  for _, case in ipairs {
    { via = "thread", timeout_ms = 600, max_s = 1.5 },  -- honours req.timeout_ms
    { via = "proxy", timeout_ms = 600, max_s = 2.0 },   -- one fixed 1 s read timeout, no retry
  } do
    it(case.via .. ": a hanging CRM costs one deadline, not attempts x timeout", function()
      assert(sb:reset())
      assert(sb:faults { match = "/v1.1/customer/get", action = "delay", ms = 2500, count = 3 })
      local t0 = socket.gettime()
      local r = assert(http.get(srv.url .. "/call?via=" .. case.via .. "&timeout_ms=" .. case.timeout_ms ..
                                "&mobile=" .. sandbox.TOM.mobile .. "&base=" .. sb.url))
      local took = socket.gettime() - t0
      assert.equal(200, r.status)
      assert.is_false(r.json.ok)
      assert.equal("timeout", r.json.kind)
      assert.equal(1, r.json.attempts)
      assert.is_true(r.json.deadline_reached)
      assert.is_true(took < case.max_s, case.via .. " took " .. took .. " s")
      socket.sleep(2.6) -- the delayed requests finish before the next case resets the sandbox
    end)
  end
end)

-- The setup docs/openresty.md shows (examples/openresty/minimal/nginx.conf and storefront.lua),
-- run as written with only the checkout path, the port and the workers' user filled in: it starts, serves, logs
-- a bad setting's real message, and writes no global.
local runner = require "loyalty.ngx.runner"
local http = require "support.http"
local sandbox = require "support.sandbox"
local support = require "nginx.support"

local quote = runner.shell_quote

local function start(env)
  local p = io.popen("mktemp -d /tmp/loyalty-docs-setup.XXXXXX")
  local prefix = p:read("*l")
  p:close()
  assert(runner.run("mkdir -p " .. quote(prefix .. "/logs") .. " && chmod 755 " .. quote(prefix)))
  local conf = assert(runner.read_file(support.root .. "/examples/openresty/minimal/nginx.conf"))
  conf = conf:gsub("/opt/lua%-loyalty", (support.root:gsub("%%", "%%%%")))
  -- as the docs say: workers that can read the checkout (a clone under root's 0700 home: root's own)
  conf = conf:gsub("\nworker_processes", "\n" .. runner.user_line() .. "\nworker_processes", 1)
  if not runner.run("test -f /usr/lib/nginx/modules/ngx_http_lua_module.so") then
    conf = conf:gsub("load_module [^\n]*\n", "") -- OpenResty: built in
  end
  local port
  local ok
  for _ = 1, 8 do
    port = math.random(20000, 59999)
    local f = assert(io.open(prefix .. "/nginx.conf", "wb"))
    f:write((conf:gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. port .. ";")))
    f:close()
    local vars = {}
    for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. quote(v) end
    ok = runner.run(table.concat(vars, " ") .. " nginx -q -p " .. quote(prefix) .. " -c " ..
                    quote(prefix .. "/nginx.conf") .. " 2>" .. quote(prefix .. "/start.err"))
    if ok or not (runner.read_file(prefix .. "/start.err") or ""):find("in use", 1, true) then break end
  end
  local srv = { prefix = prefix, url = "http://127.0.0.1:" .. port }
  function srv.log() return runner.read_file(prefix .. "/logs/error.log") or "" end
  function srv.stop()
    local pid = tonumber(runner.read_file(prefix .. "/logs/nginx.pid") or "")
    if pid then
      runner.run("kill -TERM " .. pid .. " 2>/dev/null")
      for _ = 1, 250 do
        if not runner.run("kill -0 " .. pid .. " 2>/dev/null") then break end
        runner.sleep(0.02)
      end
      runner.run("kill -KILL " .. pid .. " 2>/dev/null")
    end
    runner.run("rm -rf " .. quote(prefix))
  end
  if not ok then
    local err = runner.read_file(prefix .. "/start.err")
    srv.stop()
    error("nginx did not start with the documented config: " .. tostring(err))
  end
  return srv
end

describe("the documented nginx setup", function()
  local sb

  lazy_setup(function() sb = sandbox.start() end)
  lazy_teardown(function() if sb then sb:stop() end end)

  it("serves a shopper's points with the cosocket transport and writes no global", function()
    local srv = start { LOYALTY_BASE_URL = sb.url, LOYALTY_USERNAME = "store.server", LOYALTY_PASSWORD = "server123",
                        LOYALTY_RULES = support.root .. "/examples/rules" }
    local ok, err = pcall(function()
      for _ = 1, 3 do
        local r = assert(http.get(srv.url .. "/loyalty/summary?mobile=" .. sandbox.TOM.mobile))
        assert.equal(200, r.status, r.body)
        assert.equal(2000, r.json.points)
      end
      local m = assert(http.get(srv.url .. "/metrics"))
      assert.truthy(m.body:find('operation="customer_get",result="ok"', 1, true), m.body)
      local log = srv.log()
      assert.is_nil(log:find("writing a global", 1, true), log)
      assert.is_nil(log:find("[error]", 1, true), log)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("logs a bad setting's real message and answers the stable error", function()
    local srv = start { LOYALTY_BASE_URL = "ftp://crm.example", LOYALTY_USERNAME = "u", LOYALTY_PASSWORD = "p" }
    local ok, err = pcall(function()
      for _ = 1, 3 do
        local r = assert(http.get(srv.url .. "/loyalty/summary?mobile=1"))
        assert.equal(503, r.status)
        assert.equal("loyalty_unavailable", r.json.error.code)
      end
      local log = srv.log()
      assert.truthy(log:find("base_url must start with http", 1, true), log)
      assert.is_nil(log:find("unknown reason", 1, true), log)
    end)
    srv.stop()
    assert(ok, err)
  end)
end)

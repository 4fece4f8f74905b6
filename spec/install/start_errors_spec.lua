-- What goes wrong when starting the sandbox's nginx is one sentence naming the fix.
local runner = require "loyalty.ngx.runner"
local sandbox = require "loyalty.sandbox"
local paths = require "loyalty.paths"

describe("starting nginx, when it cannot start", function()
  it("no nginx: says which packages to install", function()
    local srv, err = runner.start { http = "", nginx = "/nonexistent/sbin/nginx" }
    assert.is_nil(srv)
    assert.same({ "config", "nginx is not installed: apt-get install nginx libnginx-mod-http-lua" },
                { err.kind, err.message })
  end)

  it("a busy port: names the port and what to do", function()
    local sb = assert(sandbox.start {})
    local other, err = sandbox.start { port = sb.port }
    sb:stop()
    assert.is_nil(other)
    assert.truthy(tostring(err):find("port " .. sb.port .. " is already in use: stop what listens there or choose "
                                     .. "another port", 1, true), tostring(err))
  end)

  it("a missing seed: names the file", function()
    local sb, err = sandbox.start { seed = "/nonexistent/seed.json" }
    assert.is_nil(sb)
    assert.equal("cannot read the seed file /nonexistent/seed.json: pass seed = a file or table", err)
  end)

  it("in the foreground, what init_by_lua raises is explained before nginx takes the terminal", function()
    local ok, err = runner.start { foreground = true,
      http = "init_by_lua_block { require('loyalty.no_such_module') }\nserver { listen 127.0.0.1:${port}; }" }
    assert.is_nil(ok)
    assert.equal("config", err.kind)
    assert.truthy(err.message:find("nginx's LuaJIT cannot find the loyalty modules", 1, true), err.message)
    assert.truthy(err.message:find("no_such_module", 1, true), err.message)
  end)

  it("data a rock does not have: names the rock to install", function()
    local p, err = paths.find("lua-loyalty-nonesuch", "examples/x.json")
    if paths.checkout_root() then -- from a checkout the data is the checkout's
      assert.is_nil(p)
      assert.truthy(err:find("is missing: reinstall the lua-loyalty-nonesuch rock", 1, true), err)
    else
      assert.is_nil(p)
      assert.truthy(err:find("luarocks install lua-loyalty-nonesuch", 1, true), err)
    end
  end)

  it("the diagnosis knows the usual failures", function()
    local cases = {
      { 'unknown directive "init_by_lua_block"', "install libnginx-mod-http-lua" },
      { "module 'cjson' not found", "apt-get install lua-cjson" },
      { "/usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so: undefined symbol: lua_newuserdatauv",
        "loaded /usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so, built for another Lua" },
      { "module 'loyalty.core' not found", "install the lua-loyalty-sandbox rock" },
      { "bind() to 127.0.0.1:80 failed (98: Address already in use)", "port 80 is already in use" },
    }
    for _, c in ipairs(cases) do
      local why = runner.diagnose(c[1], 80)
      assert.truthy(why and why:find(c[2], 1, true), c[1] .. " -> " .. tostring(why))
    end
    assert.is_nil(runner.diagnose("something new", 80))
  end)
end)

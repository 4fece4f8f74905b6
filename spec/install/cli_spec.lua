-- The `loyalty` command line as a user meets it: one argparse parser for every command, usage
-- errors as one line and exit 2, never a Lua traceback, --opt=value and --opt value alike.
local support = require "support.sandbox"
local runner = require "loyalty.ngx.runner"

local LUA = type(jit) == "table" and "luajit" or "lua5.4"

-- Runs bin/loyalty (or bin/loyalty-sandbox) with this VM; returns exit code, stdout, stderr.
local function run(args, env, bin)
  local o, e = os.tmpname(), os.tmpname()
  local a, _, c = os.execute((env or "") .. " " .. LUA .. " " .. (bin or "bin/loyalty") .. " " .. args .. " >" .. o
                             .. " 2>" .. e)
  local code = type(a) == "number" and math.floor(a / 256) or c
  local out, err = runner.read_file(o), runner.read_file(e)
  os.remove(o)
  os.remove(e)
  return code, out, err
end

describe("the loyalty command line", function()
  it("--version names the release and the VM", function()
    local code, out = run("--version")
    assert.equal(0, code)
    assert.equal("lua-loyalty 0.1.0 (" .. (type(jit) == "table" and jit.version or _VERSION) .. ")\n", out)
  end)

  it("--help for the command and each subcommand, exit 0", function()
    for _, c in ipairs { "", "rules", "rules check", "rules test", "rules explain", "call", "outbox",
                         "outbox drain", "outbox status", "outbox retry", "sandbox" } do
      local code, out = run(c .. " --help")
      assert.equal(0, code, c)
      assert.truthy(out:find("Usage: loyalty" .. (c ~= "" and (" " .. c) or ""), 1, true), out)
    end
    local code, out = run("--help", nil, "bin/loyalty-sandbox")
    assert.equal(0, code)
    assert.truthy(out:find("--port", 1, true), out)
  end)

  -- Each: arguments, and what the one line must say.
  local MISTAKES = {
    { "", "Usage: loyalty" },
    { "frobnicate", "unknown command 'frobnicate'" },
    { "rules chek examples/rules", "did you mean 'check'?" },
    { "rules check", "missing argument 'dir'" },
    { "rules explain examples/rules", "missing argument 'cart'" },
    { "rules check examples/rules --categries x", "did you mean '--categories'?" },
    { "rules explain examples/rules examples/rules/sample-cart.json --points=many", "--points needs a number" },
    { "call", "missing argument 'what'" },
    { "call --base-url", "option '--base-url' requires an argument" },
    { "call --BASEURL http://x customer_get", "unknown option '--BASEURL'" },
    { "call --bas-url http://x customer_get", "did you mean '--base-url'?" },
    { "call --provider=sap customer_get", "argument for option '--provider' must be one of" },
    { "call --organisation ORG customer_get", "--organisation and --unit are for --provider crmcom" },
    { "call GET /a /b c", "expected OPERATION or METHOD PATH" },
    { "outbox", "a command is required" },
    { "outbox drain --interval", "requires an argument" },
    { "outbox drain --interval=soon", "--interval needs a number, got 'soon'" },
    { "outbox retry seven", "ID needs a whole number, got 'seven'" },
    { "sandbox --port=http", "--port needs a whole number, got 'http'" },
    { "sandbox --prot 1", "did you mean '--port'?" },
  }
  for _, m in ipairs(MISTAKES) do
    it("`loyalty " .. m[1] .. "` is a one-line usage error, exit 2", function()
      local code, out, err = run(m[1])
      assert.equal(2, code, err)
      assert.equal("", out)
      assert.truthy(err:find(m[2], 1, true), err)
      assert.falsy(err:find("traceback", 1, true), err)
      if m[1] ~= "" then assert.equal(1, select(2, err:gsub("\n", "\n")), err) end
    end)
  end

  it("started by PUC Lua 5.1 (a 5.1 tree's wrapper), it runs under LuaJIT; the module refuses PUC 5.1", function()
    if not runner.run("command -v lua5.1 >/dev/null 2>&1") then return pending("no lua5.1 here") end
    local p = assert(io.popen("lua5.1 bin/loyalty --version 2>&1"))
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find("^lua%-loyalty 0%.1%.0 %(LuaJIT"), out)
    p = assert(io.popen("lua5.1 -e 'package.path = \"lua/?.lua;lua/?/init.lua;\" .. package.path' "
                        .. "-e 'require \"loyalty\"' 2>&1"))
    out = p:read("*a")
    p:close()
    assert.truthy(out:find("lua-loyalty runs on LuaJIT or Lua 5.2-5.4, not PUC Lua 5.1: run it with luajit", 1, true),
                  out)
  end)

  it("under LuaJIT with a LUA_PATH that hides LuaJIT's own modules (jit.vmdef), rules still load", function()
    local p = assert(io.popen("LUA_PATH='lua/?.lua;lua/?/init.lua' luajit bin/loyalty rules test examples/rules 2>&1"))
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find("passed, 0 failed", 1, true), out)
  end)

  it("a key=value of the wrong type for an operation is a one-line usage error", function()
    local code, out, err = run("call --base-url http://127.0.0.1:9 customer_get mobile.x=1",
                               "LOYALTY_USERNAME=u LOYALTY_PASSWORD=p")
    assert.equal("", out)
    assert.falsy(err:find("traceback", 1, true), err)
    assert.equal(1, select(2, err:gsub("\n", "\n")), err)
    assert.truthy(code == 1 or code == 2, err)
  end)

  it("--opt=value and --opt value mean the same", function()
    local cart = " examples/rules examples/rules/sample-cart.json "
    local c1, a = run("rules explain" .. cart .. "--tier=SILVER --points=100 --redeem=300")
    local c2, b = run("rules explain" .. cart .. "--tier SILVER --points 100 --redeem 300")
    assert.equal(0, c1)
    assert.equal(0, c2)
    assert.equal(a, b)
    assert.truthy(a:find("SILVER", 1, true), a)
  end)

  it("examples/... typed where there is none means lua-loyalty's own examples, and says so", function()
    local root = runner.tree_root()
    local o = os.tmpname()
    local e = os.tmpname()
    local a = os.execute("cd / && " .. LUA .. " " .. runner.shell_quote(root .. "/bin/loyalty")
                         .. " rules test examples/rules >" .. o .. " 2>" .. e)
    local out, err = runner.read_file(o), runner.read_file(e)
    os.remove(o)
    os.remove(e)
    assert.truthy(a == true or a == 0, err)
    assert.truthy(out:find("6 passed, 0 failed", 1, true), out)
    assert.equal("(examples/rules is not here: using lua-loyalty's own, " .. root .. "/examples/rules)\n", err)
  end)

  it("a missing settings file names --config and the example", function()
    local code, _, err = run("outbox status --config /nonexistent/store.conf.lua")
    assert.equal(1, code)
    assert.truthy(err:find("pass --config FILE", 1, true), err)
    assert.truthy(err:find("outbox.conf.lua", 1, true), err)
  end)

  describe("call, against the sandbox", function()
    local sb
    lazy_setup(function() sb = support.start() end)
    lazy_teardown(function() if sb then sb:stop() end end)

    it("takes each provider's settings: CRM.COM's organisation, as --opt=value or --opt value", function()
      local env = "LOYALTY_USERNAME=pos.user LOYALTY_PASSWORD=pos123"
      local base = sb.url .. "/crmapi/rest/v2"
      local code, out, err = run("call --provider=crmcom --base-url=" .. base .. " --organisation=SANDBOXORG"
                                 .. " participant_show number=RP0000000019", env)
      assert.equal(0, code, err)
      assert.truthy(out:find('"first_name":"Maria"', 1, true), out)
      code, out = run("call --provider crmcom --base-url " .. base .. " --organisation SANDBOXORG"
                      .. " participant_show number=RP0000000020", env)
      assert.equal(0, code)
      assert.truthy(out:find('"first_name":"Andreas"', 1, true), out)
      code, out, err = run("call --provider crmcom --base-url " .. base .. " participant_show number=RP0000000019",
                           env)
      assert.equal(1, code)
      assert.equal("", out)
      assert.truthy(err:find("pass --organisation ORG", 1, true), err)
      assert.falsy(err:find("pos123", 1, true), err)
    end)

    it("an unknown operation lists the provider's operations", function()
      local code, _, err = run("call --base-url " .. sb.url .. " customer_gte mobile=919999000001",
                               "LOYALTY_USERNAME=store.server LOYALTY_PASSWORD=server123")
      assert.equal(2, code)
      assert.truthy(err:find("unknown operation 'customer_gte' for capillary (one of: ", 1, true), err)
      assert.truthy(err:find("customer_get", 1, true), err)
    end)
  end)
end)

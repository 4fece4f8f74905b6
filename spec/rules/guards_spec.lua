-- Call guards (LuaJIT, loop-free rule files) and the limits every rule file runs under, on both VMs.
local rules = require("loyalty.rules")
local sandbox = require("loyalty.rules.sandbox")
local H = require("rules.helper")

local LUAJIT = type(rawget(_G, "jit")) == "table"

local function earn_source(body)
  return "points_earned = 1\nfor_every = 100\nfunction bonus(line, customer, cart)\n" .. body .. "\nend\n"
end

-- Whether earn.lua with this bonus body runs under call guards.
local function guarded(source)
  local env = sandbox.new_env({ on_set = function() end })
  local fn, err, is_guarded = sandbox.compile(source, "earn.lua", env, true)
  assert(fn, err)
  return is_guarded
end

local earn_error = H.earn_error

local function assert_steps(err, line, other_line)
  assert.truthy(err.message:find("took more than 1000000 steps", 1, true), err.message)
  assert.equal("earn.lua", err.file)
  if err.line ~= other_line then assert.equal(line or 4, err.line) end
end

describe("rules call guards", function()
  after_each(function()
    assert.is_nil(debug.gethook())
    assert.equal("abab", ("ab"):rep(2))
  end)
  teardown(H.cleanup)

  describe("which files run under call guards", function()
    it("loop-free files do, on both VMs", function()
      assert.is_true(guarded(earn_source("return line.sku:sub(1, 1) == 'A' and 2")))
      assert.is_true(guarded(H.read("examples/rules/earn.lua")))
      assert.is_true(guarded(H.read("examples/rules/redemption.lua")))
    end)
    it("a file with one loop anywhere falls back to the count hook", function()
      assert.is_false(guarded(earn_source("return 2") .. "local function unused() for i = 1, 3 do end end\n"))
      assert.is_false(guarded(earn_source("while line do return 2 end")))
      assert.is_false(guarded(earn_source("repeat local x = 1 until true return 2")))
      assert.is_false(guarded(earn_source("for _, c in ipairs(line.categories) do return 2 end")))
      assert.is_false(guarded("local t = {}\nfor k in pairs(t) do end\npoints_earned = 1\n"))
    end)
    it("a loop written with goto is found on the bytecode", function()
      assert.is_false(guarded(earn_source("local n = 0 ::top:: n = n + 1 goto top")))
      assert.is_false(guarded(earn_source("local n = 0 ::top:: n = n + 1 if n < 3 then goto top end return 2")))
    end)
    it("a forward goto is not a loop on LuaJIT (Lua 5.4 reads the text: any goto counts)", function()
      assert.equal(LUAJIT, guarded(earn_source("if line.qty > 5 then goto done end do return 2 end ::done::")))
    end)
    it("text that mentions the guard's name is not rewritten", function()
      assert.is_false(guarded(earn_source("local __loyalty_guard = 1 return 2")))
      assert.is_false(guarded(earn_source("return 2 -- __loyalty_guard")))
    end)
    it("function, parentheses and quotes inside strings and comments do not confuse the rewriting", function()
      local body = "local a = 'function (' .. \"f(\\\")\" .. [[function(]] --[=[ function ( ]=]\n" ..
        "local function pick(x --[[ ) ]], y) return x end -- function(\n" ..
        "return pick(2, 'end)')"
      assert.is_true(guarded(earn_source(body)))
      local rs = assert(rules.load(H.bonus_dir(body)))
      assert.equal(20, rs:earn(H.CUSTOMER, H.CART).points)
    end)
    it("a file the rewriting gets wrong still loads, with the count hook", function()
      -- '\z' continues a string on the next line; the rewriting does not follow it and leaves the file alone
      local source = earn_source("local x = 'a\\z\n   b' return x == 'ab' and 2")
      assert.is_false(guarded(source))
      local rs = assert(rules.load(H.dir({ ["program.lua"] = H.PROGRAM, ["earn.lua"] = source })))
      assert.equal(20, rs:earn(H.CUSTOMER, H.CART).points)
    end)
  end)

  describe("recursion", function()
    it("stops f calling f (a tail call never grows the stack)", function()
      assert_steps(earn_error("local function f() return f() end return f()"))
    end)
    it("stops f calling f with the stack growing, with the file named", function()
      local err = earn_error("local function f(n) return 1 + f(n + 1) end return f(1)")
      assert.equal("earn.lua", err.file)
    end)
    it("stops mutual recursion", function()
      assert_steps(earn_error("local f, g\nfunction f() return g() end\nfunction g() return f() end\nreturn f()"), 5, 6)
    end)
    it("stops pcall(pcall, f) fan-out", function()
      local err = earn_error("local function f() pcall(pcall, f) pcall(pcall, pcall, f) end f() return 2")
      assert.equal("earn.lua", err.file)
      assert.truthy(err.message:find("steps", 1, true) or err.message:find("ms", 1, true), err.message)
    end)
    it("stops xpcall chains whose handler recurses", function()
      local err = earn_error("local h\nlocal function f() error('x') end\nfunction h() return xpcall(f, h) end\n" ..
        "return h() and 2")
      assert.truthy(err.message ~= "", err.message)
    end)
  end)

  describe("the limits cannot be swallowed by the rule's own pcall", function()
    it("a tripped limit fails the evaluation even when the rule catches it and returns", function()
      assert_steps(earn_error("local function f() return f() end\nlocal ok = pcall(f)\nreturn 2"))
      assert_steps(earn_error("local function f() return f() end\npcall(f) pcall(f) pcall(pcall, f)\nreturn 2"))
    end)
    it("the handler of xpcall cannot catch it either", function()
      assert_steps(earn_error("local function f() return f() end\nxpcall(f, function() return 1 end)\nreturn 2"))
    end)
  end)

  describe("the time and memory limits", function()
    it("trip in recursion with file and line", function()
      local err = earn_error("local function f() return f() end return f()",
        { instruction_limit = 1e15, time_limit_ms = 30 })
      assert.equal("the rules ran longer than 30 ms (is there a loop that never ends?) in earn.lua line 4",
        err.message)
    end)
    it("memory built up by recursion is stopped", function()
      local err = earn_error("local t = {} local function f(i) t[i] = { i, i, i } return f(i + 1) end return f(1)",
        { instruction_limit = 1e15, time_limit_ms = 60000, memory_limit_kb = 2048 })
      assert.truthy(err.message:find("more than 2048 KB of memory", 1, true), err.message)
      assert.equal("earn.lua", err.file)
    end)
  end)

  describe("callbacks from string.gsub and table.sort", function()
    it("a gsub callback that recurses through gsub is stopped without crashing the VM", function()
      local err = earn_error("local function f() local s = ('x'):gsub('x', f) return s end\nf() return 2")
      assert.truthy(err.message:find("nests more than 20 deep", 1, true), err.message)
      assert.equal("earn.lua", err.file)
    end)
    it("a gsub callback that recurses by itself is stopped", function()
      assert_steps(earn_error("local function f() return f() end\nlocal s = ('x'):gsub('x', f) return 2"))
    end)
    it("a gsub callback that loops is stopped", function()
      local err = earn_error("local s = ('x'):gsub('x', function() while true do end end) return 2")
      assert.truthy(err.message:find("steps", 1, true), err.message)
    end)
    it("gsub calling print for every character of a long string is counted", function()
      local doubling = ("s = s .. s "):rep(15)
      local err = earn_error("local s = 'xxxxxxxxxxxxxxxx' " .. doubling .. " s:gsub('.', print) return 2")
      assert.truthy(err.message:find("steps", 1, true), err.message)
    end)
    it("a sort comparator that recurses or loops is stopped", function()
      assert_steps(earn_error("local function less(a, b) return less(a, b) end\n" ..
        "table.sort({ 3, 2, 1 }, less) return 2"))
      local err = earn_error("table.sort({ 3, 2, 1 }, function() while true do end end) return 2")
      assert.truthy(err.message:find("steps", 1, true), err.message)
    end)
    it("gsub and sort with ordinary callbacks still work", function()
      local body = "local t = { 3, 1, 2 } table.sort(t, function(a, b) return a > b end)\n" ..
        "local s = ('ab'):gsub('%a', function(c) return c:upper() end)\n" ..
        "if t[1] == 3 and s == 'AB' then return 2 end"
      local rs = assert(rules.load(H.bonus_dir(body)))
      assert.equal(20, rs:earn(H.CUSTOMER, H.CART).points)
    end)
  end)

  it("a guarded rule set evaluates normally after another one tripped", function()
    local bad = assert(rules.load(H.bonus_dir("local function f() return f() end return f()")))
    assert.is_nil(bad:earn(H.CUSTOMER, H.CART))
    local good = assert(rules.load(H.bonus_dir("local function two() return 2 end return two(), 'double'")))
    for _ = 1, 200 do  -- hot enough for LuaJIT to compile the guarded code
      local res = assert(good:earn(H.CUSTOMER, H.CART))
      assert.equal(20, res.points)
    end
  end)
end)

-- loyalty.core memcap: the allocation cap the rules sandbox arms while rule code runs (csrc/memcap.c).
local core = require "loyalty.core"

local LUA54 = _VERSION == "Lua 5.4" and not rawget(_G, "jit")

describe("core.memcap", function()
  after_each(function() core.memcap_stop() end)

  it("refuses the allocation that would pass the limit, before it happens", function()
    assert.is_true(core.memcap_start(256 * 1024, 1024 * 1024))
    local ok, err = pcall(function()
      local t = {}
      for i = 1, 1e7 do t[i] = { i } end
      return #t
    end)
    local used, refusal = core.memcap_stop()
    assert.is_false(ok)
    assert.equal("not enough memory", err)
    assert.equal(1, refusal)
    assert.truthy(used <= 256 * 1024 + 256 * 1024, used)   -- the limit, plus the reserve after a refusal
  end)

  it("counts growth, garbage included, and refuses one block above max_block", function()
    assert.is_true(core.memcap_start(64 * 1024 * 1024, 64 * 1024))
    local ok, err = pcall(function() local s = ("x"):rep(100) return s:rep(1000) end)
    local _, refusal = core.memcap_stop()
    assert.is_false(ok)
    assert.equal("not enough memory", err)
    assert.equal(2, refusal)
  end)

  it("passes everything through when stopped, and says nothing was refused", function()
    assert.is_true(core.memcap_start(1024 * 1024, 1024 * 1024))
    local used, refusal = core.memcap_stop()
    assert.equal(0, refusal)
    assert.truthy(used >= 0)
    assert.equal(0, core.memcap_refused())
    assert.equal(4096 * 1024, #("x"):rep(4096 * 1024))
  end)

  it("names the chunk and line of the refused request on Lua 5.4", function()
    local chunk = assert(load("local t = {} for i = 1, 1e7 do t[i] = { i } end", "=probe.lua"))
    assert.is_true(core.memcap_start(128 * 1024, 1024 * 1024))
    assert.is_false(pcall(chunk))
    local _, refusal, where, line = core.memcap_stop()
    assert.equal(1, refusal)
    if LUA54 then
      assert.same({ "probe.lua", 1 }, { where, line })
    else
      assert.is_nil(where)
    end
  end)

  it("checks its arguments", function()
    assert.has_error(function() core.memcap_start("x", 1) end)
    assert.has_error(function() core.memcap_start(-1, 1) end)
    assert.has_error(function() core.memcap_start(1) end)
  end)
end)

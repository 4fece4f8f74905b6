-- loyalty.schema: one wording for unknown keys, wrong types and ranges, wherever options are checked.
local schema = require "loyalty.schema"

describe("loyalty.schema", function()
  local F = {
    name = "string",
    count = { type = "number", min = 1, max = 10, integer = true, default = 3, doc = "how many" },
    mode = { type = "string", one_of = { fast = true, safe = true } },
    wait = { type = "number", above = 0 },
    program = { type = { "string", "table" } },
  }

  it("fills defaults and keeps given values", function()
    local out = assert(schema.check(F, { name = "a" }, "t"))
    assert.same({ name = "a", count = 3 }, out)
  end)

  it("names an unknown key, a wrong type, a range, a fraction and an unknown choice", function()
    local cases = {
      { { other = 1 }, "t: unknown option 'other'", "other" },
      { { count = "2" }, "t: option 'count' must be a number (how many), got string", "count" },
      { { count = 11 }, "t: option 'count' must be from 1 to 10", "count" },
      { { count = 0 / 0 }, "t: option 'count' must be a finite number", "count" },
      { { count = 1.5 }, "t: option 'count' must be a whole number", "count" },
      { { mode = "slow" }, "t: option 'mode': 'slow' is not one of fast, safe", "mode" },
      { { wait = 0 }, "t: option 'wait' must be more than 0", "wait" },
      { { wait = math.huge }, "t: option 'wait' must be a finite number", "wait" },
      { { program = 1 }, "t: option 'program' must be a string or a table, got number", "program" },
    }
    for _, c in ipairs(cases) do
      local out, err = schema.check(F, c[1], "t")
      assert.is_nil(out)
      assert.equal("config", err.kind)
      assert.equal(c[2], err.message)
      assert.equal(c[3], err.key)
    end
  end)

  it("takes any of several types, and a bound it excludes", function()
    local out = assert(schema.check(F, { program = { 1 }, wait = 0.5 }, "t"))
    assert.same({ program = { 1 }, wait = 0.5, count = 3 }, out)
    assert.equal("p", assert(schema.check(F, { program = "p" }, "t")).program)
  end)

  it("says 'setting' where asked, and refuses a non-table", function()
    local _, err = schema.check(F, { x = 1 }, "store.conf.lua", "setting")
    assert.equal("store.conf.lua: unknown setting 'x'", err.message)
    _, err = schema.check(F, "x", "t")
    assert.matches("a table of options expected, got string", err.message)
  end)

  it("raises for programmer errors with assert", function()
    local ok, msg = pcall(schema.assert, F, { nope = true }, "loyalty.client")
    assert.is_false(ok)
    assert.matches("loyalty.client: unknown option 'nope'", msg)
  end)
end)


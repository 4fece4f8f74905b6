local core = require "loyalty.core"

describe("loyalty.core clock", function()
  it("sleeps at least the time asked on a monotonic clock", function()
    local t0 = core.now()
    core.sleep(0.02)
    assert.is_true(core.now() - t0 >= 0.02)
  end)

  it("refuses negative or absurd sleeps and non-numbers", function()
    assert.has_error(function() core.sleep(-1) end)
    assert.has_error(function() core.sleep(7200) end)
    assert.has_error(function() core.sleep("soon") end)
  end)
end)

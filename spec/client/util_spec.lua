-- loyalty.util: the helpers several modules share.
local util = require "loyalty.util"

describe("loyalty.util", function()
  it("single_line accepts one non-empty line within the limit only", function()
    assert.is_true(util.single_line("abc", 3))
    assert.is_false(util.single_line("abcd", 3))
    assert.is_false(util.single_line("", 3))
    assert.is_false(util.single_line(12, 3))
    for _, bad in ipairs { "a\nb", "a\rb", "a\0b" } do assert.is_false(util.single_line(bad, 10)) end
  end)

  it("one_line turns line breaks and NUL into spaces and cuts", function()
    assert.equal("a b c", util.one_line("a\nb\0c", 10))
    assert.equal("a  b", util.one_line("a\r\nbcdef", 4))
    assert.equal("12", util.one_line(12, 10))
  end)

  it("reads and writes whole files, atomically when asked", function()
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    assert.is_true(util.write_file(path, "one\0two"))
    assert.equal("one\0two", util.read_file(path))
    assert.is_true(util.write_atomic(path, "three"))
    assert.equal("three", util.read_file(path))
    local data, err = util.read_file(path .. ".missing")
    assert.is_nil(data)
    assert.matches("missing", err)
    local ok, werr = util.write_atomic("/nonexistent-dir/x", "y")
    assert.is_nil(ok)
    assert.is_string(werr)
  end)

  it("unique_name differs from one call to the next", function()
    assert.are_not.equal(util.unique_name(), util.unique_name())
  end)

  it("replace_plain treats the needle as text, never a pattern", function()
    assert.equal("[X] and [X]", util.replace_plain("p%( and p%(", "p%(", "[X]"))
    assert.equal("nothing", util.replace_plain("nothing", "zz", "[X]"))
    assert.equal("[X][X]", util.replace_plain("aa", "a", "[X]"))
  end)

  it("backoff doubles from base up to max, half of it jittered; a longer retry_after wins", function()
    local lo, hi = function() return 0 end, function() return 0.999999 end
    assert.equal(1, util.backoff(1, 2, 600, lo))
    assert.near(2, util.backoff(1, 2, 600, hi), 1e-5)
    assert.equal(4, util.backoff(3, 2, 600, lo))
    assert.equal(300, util.backoff(20, 2, 600, lo))
    assert.equal(50, util.backoff(1, 2, 600, lo, 50))
    assert.equal(600, util.backoff(1, 2, 600, lo, 9999))
    assert.equal(30, util.backoff(1, 0.2, 5, lo, 9999, 30))
  end)
end)

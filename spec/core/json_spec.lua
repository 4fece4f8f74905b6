local core = require "loyalty.core"

local has_integers = math.type ~= nil

describe("loyalty.core json", function()
  it("has a version and sentinels", function()
    assert.equal("0.1.0", core.version)
    assert.is_not_nil(core.null)
    assert.is_not_nil(core.empty_array)
  end)

  it("encodes empty_array as [] and empty tables as {}", function()
    assert.equal("[]", core.json_encode(core.empty_array))
    assert.equal('{"a":[]}', core.json_encode({ a = core.empty_array }))
    assert.equal('[[],{}]', core.json_encode({ core.empty_array, {} }))
  end)

  it("leaves strings that merely contain the sentinel text alone", function()
    local s = "x" .. core.empty_array
    local out = core.json_encode({ s = s })
    assert.equal(s, core.json_decode(out).s)
  end)

  it("round-trips nested values and null", function()
    local doc = { a = { b = { 1, 2, { c = "d" } } }, ok = true, no = false, n = core.null }
    local back = core.json_decode(core.json_encode(doc))
    assert.same({ 1, 2, { c = "d" } }, back.a.b)
    assert.is_true(back.ok)
    assert.is_false(back.no)
    assert.equal(core.null, back.n)
  end)

  it("handles \\u escapes and raw UTF-8", function()
    assert.equal("caf\195\169", core.json_decode('"caf\\u00e9"'))
    assert.equal("caf\195\169", core.json_decode('"caf\195\169"'))
    assert.equal("caf\195\169", core.json_decode(core.json_encode("caf\195\169")))
    assert.equal("\226\130\172", core.json_decode('"\\u20ac"'))
  end)

  it("keeps integers beyond 2^53 exact as strings", function()
    local v = core.json_decode('{"id":12345678901234567890,"b":9007199254740993,"neg":-9007199254740993,'
      .. '"s":"12345678901234567890","arr":[12345678901234567890123]}')
    assert.equal("12345678901234567890", v.id)
    assert.equal("9007199254740993", v.b)
    assert.equal("-9007199254740993", v.neg)
    assert.equal("12345678901234567890", v.s)
    assert.equal("12345678901234567890123", v.arr[1])
  end)

  it("keeps 2^53 itself and fractions as numbers", function()
    local v = core.json_decode('[9007199254740992, 1.5, 1e3, 12345678901234567890.5]')
    assert.equal(9007199254740992, v[1])
    assert.equal("number", type(v[1]))
    assert.equal(1.5, v[2])
    assert.equal(1000, v[3])
    assert.equal("number", type(v[4]))
  end)

  it("gives Lua integers for integral numbers on 5.4", function()
    local v = core.json_decode('{"a":1,"b":[2,3.0,-4],"c":{"d":0},"f":2.5}')
    assert.equal(1, v.a)
    if has_integers then
      assert.equal("integer", math.type(v.a))
      assert.equal("integer", math.type(v.b[1]))
      assert.equal("integer", math.type(v.b[2]))
      assert.equal("integer", math.type(v.b[3]))
      assert.equal("integer", math.type(v.c.d))
      assert.equal("float", math.type(v.f))
      assert.equal("integer", math.type(core.json_decode("42")))
    end
  end)

  it("returns decode errors with the raw body, capped", function()
    local v, err = core.json_decode('{"a":')
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.is_string(err.message)
    assert.equal('{"a":', err.raw)

    local big = "<html>" .. string.rep("x", 5000)
    v, err = core.json_decode(big)
    assert.is_nil(v)
    assert.equal(2048, #err.raw)
    assert.equal(big:sub(1, 2048), err.raw)

    v, err = core.json_decode(big, 10)
    assert.is_nil(v)
    assert.equal(big:sub(1, 10), err.raw)
  end)

  it("refuses numbers beyond a double's range (never inf)", function()
    for _, text in ipairs { "1e400", "[1e400]", '{"a": -1e400}', "1.8e308", "[0.1e310]",
                            "[" .. ("9"):rep(400) .. ".0]", '{"x": [1, 2, {"y": 17976931348623159e292}]}' } do
      local v, err = core.json_decode(text)
      assert.is_nil(v, text)
      assert.equal("decode", err.kind)
      assert.matches("out of range", err.message)
      assert.equal(text:sub(1, 2048), err.raw)
    end
    for text, want in pairs { ["1.7976931348623157e308"] = 1.7976931348623157e308, ["1e-400"] = 0,
                              ["0.00001e313"] = 1e308, ['"1e400"'] = "1e400", ["-0.0e999"] = 0 } do
      local v = core.json_decode(text)
      assert.equal(want, v, text)
    end
    local reply, err = core.decode_reply(200, {}, '{"points": 1e999}')
    assert.is_nil(reply)
    assert.equal("decode", err.kind)
    assert.equal(200, err.status)
  end)

  it("reports truncated and empty input", function()
    for _, text in ipairs { '[1, 2', '{"a":"b', '', '   ', 'nul', '{"a":1}x', 'NaN' } do
      local v, err = core.json_decode(text)
      assert.is_nil(v, text)
      assert.equal("decode", err.kind, text)
    end
  end)

  it("refuses numbers that would lose digits on encode", function()
    local v, err = core.json_encode({ id = 2 ^ 60 })
    assert.is_nil(v)
    assert.equal("config", err.kind)
    assert.equal('{"id":12345678901234}', core.json_encode({ id = 12345678901234 }))
    assert.equal('{"p":0.1}', core.json_encode({ p = 0.1 }))
  end)

  it("returns encode errors instead of raising", function()
    local v, err = core.json_encode({ f = function() end })
    assert.is_nil(v)
    assert.equal("config", err.kind)
    local cyclic = {}
    cyclic.self = cyclic
    v, err = core.json_encode(cyclic)
    assert.is_nil(v)
    assert.equal("config", err.kind)
    local wide = {}
    for i = 1, 8 do wide[i] = wide end
    v, err = core.json_encode(wide)
    assert.is_nil(v)
    assert.equal("config", err.kind)
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.json_decode({}) end)
    assert.has_error(function() core.json_decode("1", "x") end)
    assert.has_error(function() core.json_encode() end)
  end)
end)

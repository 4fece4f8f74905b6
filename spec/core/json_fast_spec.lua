-- The fast JSON path (csrc/json_fast.c) must decode exactly what cjson decodes, and leave
-- everything it does not take (escapes, odd numbers, errors, depth) to cjson: random documents,
-- valid and broken, compared value by value with lua-cjson's own decoder.
local core = require "loyalty.core"
-- cjson configured as the core's private instance is (invalid numbers refused)
local cjson = require("cjson.safe").new()
cjson.decode_invalid_numbers(false)

local function same(a, b, path)
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "table" then
    for k, v in pairs(a) do
      local ok, why = same(v, b[k], path .. "." .. tostring(k))
      if not ok then return false, why end
    end
    for k in pairs(b) do if a[k] == nil then return false, path .. "." .. tostring(k) .. " missing" end end
    return true
  end
  if type(a) == "number" then
    -- (on Lua 5.4 the core makes integral numbers integers, so -0 becomes 0 there by design)
    if a ~= b and not (a ~= a and b ~= b) then return false, path .. ": " .. a .. " vs " .. b end
    if a == 0 and math.type == nil and 1 / a ~= 1 / b then return false, path .. ": sign of zero" end
    return true
  end
  if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
  return true
end

local WORDS = { "a", "points", "", "caf\195\169", "x y", "tab\there", "esc\\\"q", "u\\u00e9", "nl\\n", "\\/" }
local NUMBERS = { "0", "-0", "7", "-12", "123456789012345", "1234567890123456", "1.5", "-0.25", "1e3", "2E-2",
                  "1.0", "10.50", "9007199254740993", "3.14159265358979", "0.1", "100000000000000000000" }

local function gen(depth)
  local r = math.random(1, depth > 4 and 6 or 9)
  if r == 1 then return '"' .. WORDS[math.random(#WORDS)] .. '"' end
  if r == 2 then return NUMBERS[math.random(#NUMBERS)] end
  if r == 3 then return ({ "true", "false", "null" })[math.random(3)] end
  if r <= 6 then return '"' .. WORDS[math.random(3)] .. math.random(100) .. '"' end
  local n, parts = math.random(0, 5), {}
  local ws = ({ "", " ", "\n\t", "\r\n " })[math.random(4)]
  if r <= 8 then
    for i = 1, n do parts[i] = ws .. '"k' .. math.random(6) .. '"' .. ws .. ":" .. ws .. gen(depth + 1) end
    return "{" .. table.concat(parts, ",") .. ws .. "}"
  end
  for i = 1, n do parts[i] = ws .. gen(depth + 1) end
  return "[" .. table.concat(parts, ",") .. ws .. "]"
end

describe("core.json_decode fast path", function()
  it("decodes random documents exactly as cjson does", function()
    math.randomseed(1818)
    for _ = 1, 3000 do
      local text = gen(0)
      local want = cjson.decode(text)
      local got, err = core.json_decode(text)
      if want == nil then
        assert.is_nil(got, text)
      else
        assert.is_not_nil(got, text .. ": " .. tostring(err and err.message))
        -- big integers are strings by design (exact); compare the rest with cjson
        if not text:find("%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d") then
          local ok, why = same(got, want, "$")
          assert(ok, text .. "\n" .. tostring(why))
        end
      end
    end
  end)

  it("leaves broken documents to cjson, with cjson's message", function()
    math.randomseed(18)
    for _ = 1, 2000 do
      local text = gen(0)
      local cut = text:sub(1, math.random(0, #text))
      if math.random() < 0.3 then
        cut = cut .. ({ ",", "}", "]", ":", "x", "01", "-", "1.", ".5", "+1" })[math.random(10)]
      end
      local want, werr = cjson.decode(cut)
      local got, err = core.json_decode(cut)
      if want == nil then
        assert.is_nil(got, cut)
        assert.equal("decode", err.kind)
        -- (where big integers were quoted first, cjson counts characters in the quoted text)
        if not cut:find("%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d") then assert.equal(werr, err.message, cut) end
      else
        assert.is_not_nil(got, cut)
      end
    end
  end)

  it("keeps cjson's depth limit", function()
    local deep = string.rep("[", 1001) .. string.rep("]", 1001)
    local v, err = core.json_decode(deep)
    assert.is_nil(v)
    assert.matches("nested", err.message)
    local ok = string.rep("[", 999) .. string.rep("]", 999)
    assert.is_table(core.json_decode(ok))
  end)

  it("keeps integers exact at the 2^53 edge, with no pre-scan of the text", function()
    local v = core.json_decode('{"a":1234567890123456,"b":9007199254740992,"c":-9007199254740992,' ..
                               '"d":9007199254740993,"e":-9007199254740993,"f":"90071992547409930000",' ..
                               '"g":[9999999999999999,1000000000000000]}')
    assert.equal(1234567890123456, v.a)
    assert.equal(9007199254740992, v.b)
    assert.equal(-9007199254740992, v.c)
    assert.equal("9007199254740993", v.d)
    assert.equal("-9007199254740993", v.e)
    assert.equal("90071992547409930000", v.f)
    assert.equal("9999999999999999", v.g[1])
    assert.equal(1000000000000000, v.g[2])
    assert.equal("number", type(v.b))
  end)

  it("scans strings of every length up to each byte that ends them", function()
    for n = 0, 19 do
      local s = string.rep("x", n)
      assert.equal(s, core.json_decode('"' .. s .. '"'))
      assert.equal(s .. "\\", core.json_decode('"' .. s .. '\\\\"')) -- an escaped backslash
      assert.equal(s .. "\n", core.json_decode('"' .. s .. '\\n"')) -- an escaped newline
      assert.equal(s .. '"y', core.json_decode('"' .. s .. '\\"y"')) -- an escaped quote
      local raw = '"' .. s .. '\1"' -- a raw control character: left to cjson, which takes it
      assert.equal(cjson.decode(raw), core.json_decode(raw))
      assert.equal(s .. "\127\200", core.json_decode('"' .. s .. '\127\200"')) -- DEL and high bytes pass
      assert.is_nil((core.json_decode('"' .. s))) -- unterminated
    end
  end)

  it("gives null as cjson's null and nested empties as tables", function()
    local v = core.json_decode('{"a":null,"b":[],"c":{},"d":[null,1]}')
    assert.equal(core.null, v.a)
    assert.same({}, v.b)
    assert.same({}, v.c)
    assert.equal(core.null, v.d[1])
  end)
end)

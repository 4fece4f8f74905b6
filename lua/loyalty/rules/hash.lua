-- Rule-set identity: two 32-bit FNV-1a hashes with different offset bases, printed as 16 hex digits.
-- For audit identity (which rules shaped an order), not security: it is not collision resistant.
-- Plain arithmetic only, so Lua 5.4 and LuaJIT give the same digits.
local _M = {}

local byte, floor, format = string.byte, math.floor, string.format

-- XOR of two bytes, without bit operators (LuaJIT cannot parse 5.4's ~).
local XOR = {}
for a = 0, 255 do
  local row = {}
  for b = 0, 255 do
    local r, bit, x, y = 0, 1, a, b
    for _ = 1, 8 do
      if (x % 2) ~= (y % 2) then r = r + bit end
      x, y, bit = floor(x / 2), floor(y / 2), bit * 2
    end
    row[b] = r
  end
  XOR[a] = row
end

local TWO32 = 4294967296

local function fnv1a(s, h)
  for i = 1, #s do
    local low = h % 256
    h = h - low + XOR[low][byte(s, i)]
    -- h * 16777619 mod 2^32, split so no product exceeds 2^53: 16777619 = 2^24 + 403
    h = ((h % 256) * 16777216 + h * 403) % TWO32
  end
  return h
end

-- parts: array of strings hashed in order, each length-prefixed so boundaries count.
function _M.hex(parts)
  local h1, h2 = 2166136261, 3735928559
  for _, p in ipairs(parts) do
    local framed = #p .. ":" .. p
    h1, h2 = fnv1a(framed, h1), fnv1a(framed, h2)
  end
  return format("%08x%08x", floor(h1), floor(h2))
end

return _M

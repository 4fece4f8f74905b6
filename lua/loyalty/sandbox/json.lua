-- JSON for the sandbox: cjson decodes; encoding is ours because Debian's cjson 2.1.0 cannot tell
-- an empty array from an empty object and the envelopes need both (`"warnings": []`, `"fields": {}`).
local cjson = require("cjson.safe")

local _M = {}

local ARRAY = { __name = "json.array" }
_M.null = cjson.null

--- Marks t as a JSON array (so that an empty t encodes as `[]`).
function _M.array(t)
  return setmetatable(t or {}, ARRAY)
end

local function strip_nulls(v)
  if type(v) ~= "table" then return v end
  local is_array = v[1] ~= nil
  for k, x in pairs(v) do
    if x == cjson.null then
      v[k] = nil
    elseif type(x) == "table" then
      strip_nulls(x)
    end
  end
  if is_array then setmetatable(v, ARRAY) end
  return v
end

--- Decodes s; JSON nulls become absent fields. Returns value or nil, message.
function _M.decode(s)
  if type(s) ~= "string" or s == "" then return nil, "empty body" end
  local v, err = cjson.decode(s)
  if v == nil then return nil, err end
  return strip_nulls(v)
end

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
local function esc_char(c)
  return ESC[c] or string.format("\\u%04x", c:byte())
end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', esc_char) .. '"'
end

local floor, huge = math.floor, math.huge
local function encode_number(n)
  if n ~= n or n == huge or n == -huge then return "null" end
  if floor(n) == n and n > -1e15 and n < 1e15 then return string.format("%d", n) end
  return string.format("%.14g", n)
end

local encode_value
local function encode_table(t, out)
  if getmetatable(t) == ARRAY or t[1] ~= nil then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out)
    end
    out[#out + 1] = "]"
    return
  end
  out[#out + 1] = "{"
  local first = true
  for k, v in pairs(t) do
    if not first then out[#out + 1] = "," end
    first = false
    out[#out + 1] = encode_string(tostring(k))
    out[#out + 1] = ":"
    encode_value(v, out)
  end
  out[#out + 1] = "}"
end

encode_value = function(v, out)
  local tv = type(v)
  if tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "table" then
    encode_table(v, out)
  else
    out[#out + 1] = "null"
  end
end

function _M.encode(v)
  local out = {}
  encode_value(v, out)
  return table.concat(out)
end

return _M

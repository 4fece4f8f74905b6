-- Typed reads of reply values, at the place each value is read: a value of the wrong type (or a
-- non-finite number) is a `decode` error naming the field, with the reply's status and request
-- id, never a raise further on. Absent and JSON null read as nil everywhere.
--
--   local v, err = shape.number(r, x.points, "customer.loyalty_points")
--   if err then return nil, err end
local errors = require "loyalty.errors"

local type, tonumber = type, tonumber
local huge = math.huge

local _M = {}

local bad = errors.bad_field
_M.bad = bad

local function absent(v) return v == nil or type(v) == "userdata" end
_M.absent = absent

--- An object (a JSON object or empty array) or nil.
function _M.object(r, v, field)
  if absent(v) then return nil end
  if type(v) ~= "table" or v[1] ~= nil then return nil, bad(r, field, "an object", v) end
  return v
end

--- One object given as an object or as a one-element array of it (replies converted from XML
-- come either way), or nil.
function _M.one(r, v, field)
  if absent(v) then return nil end
  if type(v) == "table" and v[1] ~= nil then
    v, field = v[1], field .. "[1]"
    if absent(v) then return nil end
  end
  if type(v) ~= "table" or v[1] ~= nil then return nil, bad(r, field, "an object", v) end
  return v
end

--- A JSON array (a table; an empty object counts as an empty array) or nil.
function _M.array(r, v, field)
  if absent(v) then return nil end
  if type(v) ~= "table" then return nil, bad(r, field, "an array", v) end
  return v
end

--- An array whose elements are all objects; nil when absent.
function _M.objects(r, v, field)
  if absent(v) then return nil end
  if type(v) ~= "table" then return nil, bad(r, field, "an array of objects", v) end
  for i = 1, #v do
    local e = v[i]
    if type(e) ~= "table" or e[1] ~= nil then return nil, bad(r, field .. "[" .. i .. "]", "an object", e) end
  end
  return v
end

--- A finite number (a numeric string is read as its number) or nil.
function _M.number(r, v, field)
  if absent(v) then return nil end
  local n = v
  if type(v) == "string" then n = tonumber(v) end
  if type(n) ~= "number" or n ~= n or n == huge or n == -huge then
    return nil, bad(r, field, "a finite number", v)
  end
  return n
end

--- A string (a number is read as its text) or nil.
function _M.text(r, v, field)
  if absent(v) then return nil end
  local t = type(v)
  if t == "string" then return v end
  if t == "number" and v == v and v ~= huge and v ~= -huge then return tostring(v) end
  return nil, bad(r, field, "a string", v)
end

--- A scalar id or code as it came (string or finite number) or nil.
function _M.scalar(r, v, field)
  if absent(v) then return nil end
  local t = type(v)
  if t == "string" or (t == "number" and v == v and v ~= huge and v ~= -huge) then return v end
  return nil, bad(r, field, "a string or number", v)
end

--- A boolean ("true"/"false" strings read as booleans) or nil.
function _M.boolean(r, v, field)
  if absent(v) then return nil end
  if v == true or v == "true" then return true end
  if v == false or v == "false" then return false end
  return nil, bad(r, field, "a boolean", v)
end

--- Text for a message: a string as it is, anything else nil (never raises, never an error).
function _M.message(v)
  if type(v) == "string" then return v end
  if type(v) == "number" then return tostring(v) end
  return nil
end

return _M

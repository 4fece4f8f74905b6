-- The one checker of option tables: client options, program settings, ngx settings, outbox
-- options, rules limits. Unknown keys and wrong types read the same everywhere:
--   "<where>: unknown option 'x'"  /  "<where>: option 'x' must be a number (what it is), got string"
local errors = require "loyalty.errors"

local _M = {}

-- A field: a type name ("string"), or a table
-- { type, default = v, doc = "what it is", one_of = { a = true, ... }, min = n, max = n, above = n,
--   integer = true }. type may also be a list of names ({ "string", "function" }): any of them.
-- min and max include the bound, above excludes it (above = 0: more than zero).
local function field_of(spec)
  if type(spec) == "string" then return { type = spec } end
  return spec
end
_M.field = field_of

local function fail(where, key, message)
  return nil, errors.config(where .. ": " .. message, key)
end

-- true when v has the field's type; the type's name for messages ("a string or a table").
local function type_ok(f, v)
  local want = f.type
  if type(want) ~= "table" then return type(v) == want, want end
  local ok = false
  for _, t in ipairs(want) do ok = ok or type(v) == t end
  return ok, table.concat(want, " or a ")
end

--- check(fields, t, where [, word]) -> out | nil, err (kind "config", err.key names the field).
-- `fields` maps a key to a field; `out` is a new table holding t's values and the defaults.
-- `word` names the keys in messages ("option" by default; "setting" for store settings).
function _M.check(fields, t, where, word)
  word = word or "option"
  if type(t) ~= "table" then return fail(where, nil, "a table of " .. word .. "s expected, got " .. type(t)) end
  local out = {}
  for k, v in pairs(t) do
    local spec = fields[k]
    if spec == nil then return fail(where, tostring(k), "unknown " .. word .. " '" .. tostring(k) .. "'") end
    local f = field_of(spec)
    local ok, want = type_ok(f, v)
    if not ok then
      local what = f.doc and (" (" .. f.doc .. ")") or ""
      return fail(where, k, word .. " '" .. k .. "' must be a " .. want .. what .. ", got " .. type(v))
    end
    if f.one_of and not f.one_of[v] then
      local names = {}
      for name in pairs(f.one_of) do names[#names + 1] = tostring(name) end
      table.sort(names)
      return fail(where, k, word .. " '" .. k .. "': '" .. tostring(v) .. "' is not one of "
                            .. table.concat(names, ", "))
    end
    if type(v) == "number" then
      if v ~= v or ((f.min or f.max or f.above) and (v == math.huge or v == -math.huge)) then
        return fail(where, k, word .. " '" .. k .. "' must be a finite number")
      end
      if f.integer and v ~= math.floor(v) then
        return fail(where, k, word .. " '" .. k .. "' must be a whole number")
      end
      if (f.min and v < f.min) or (f.max and v > f.max) then
        return fail(where, k, word .. " '" .. k .. "' must be from " .. tostring(f.min or "-inf") .. " to "
                             .. tostring(f.max or "inf"))
      end
      if f.above and v <= f.above then
        return fail(where, k, word .. " '" .. k .. "' must be more than " .. tostring(f.above))
      end
    end
    out[k] = v
  end
  for k, spec in pairs(fields) do
    if out[k] == nil and type(spec) == "table" and spec.default ~= nil then out[k] = spec.default end
  end
  return out
end

--- Like check, but raises (level: the caller's caller) on a wrong key or type: for options a
-- program passes in code, where a mistake is a programmer error.
function _M.assert(fields, t, where, level)
  local out, err = _M.check(fields, t, where)
  if not out then error(err.message, (level or 1) + 1) end
  return out
end

--- fields merged: merge(a, b, ...) -> a new table with every key of each (later ones win).
function _M.merge(...)
  local out = {}
  for i = 1, select("#", ...) do
    for k, v in pairs((select(i, ...))) do out[k] = v end
  end
  return out
end

return _M

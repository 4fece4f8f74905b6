-- Strict reading of fixtures and explain carts: every key must be one the tools read, or the fixture is an error
-- ("did you mean"), with the line (Lua) or line:column (JSON) where the key is written. A misspelt expectation
-- such as `point = 1290` would otherwise be ignored and the fixture would PASS without checking anything.
local _M = {}

local lexer = require("loyalty.rules.lexer")
local names = require("loyalty.rules.names")

local format, concat = string.format, table.concat

local ANY = {}
local NUMBER, STRING, BOOLEAN, TEXT_OR_LIST = "number", "string", "boolean", "text or a list of text"

local LINE = { kind = "record", fields = { sku = STRING, qty = NUMBER, price = NUMBER, amount = NUMBER,
  discount = NUMBER, categories = TEXT_OR_LIST, category = TEXT_OR_LIST, name = STRING } }
local CART = { kind = "record", fields = { currency = STRING, lines = { kind = "list", item = LINE },
  shipping = NUMBER, tax = NUMBER, total = NUMBER } }
local CUSTOMER = { kind = "record", fields = { tier = STRING, points = NUMBER } }
local EXPECT = { kind = "record", fields = {
  points = NUMBER,
  redemption = { kind = "record", fields = { allowed = BOOLEAN, min = NUMBER, max = NUMBER, multiple_of = NUMBER,
    points = NUMBER, value = NUMBER, reason = STRING } },
  attributes = { kind = "map", item = { kind = "map", item = ANY } },
} }
local FIXTURE = { kind = "record", fields = { name = STRING, customer = CUSTOMER, cart = CART,
  requested_points = NUMBER, expect = EXPECT } }
local EXPLAIN_DOC = { kind = "record", fields = { name = STRING, customer = CUSTOMER, cart = CART,
  requested_points = NUMBER, expect = EXPECT } }
_M.CART, _M.FIXTURE = CART, FIXTURE

local function sorted_names(fields)
  local out = {}
  for k in pairs(fields) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function type_ok(want, v)
  if want == ANY then return true end
  if want == TEXT_OR_LIST then
    if type(v) == "string" then return true end
    if type(v) ~= "table" then return false end
    for _, x in pairs(v) do if type(x) ~= "string" then return false end end
    return true
  end
  if want == NUMBER then return type(v) == "number" or (type(v) == "string" and tonumber(v) ~= nil) end
  return type(v) == want
end

-- Walks data against shape; calls problem(path_words, key, message) for each mistake.
local function walk(shape, data, path, problem)
  if type(shape) == "string" then return end
  if shape.kind == "record" then
    if type(data) ~= "table" then return end
    local keys = {}
    for k in pairs(data) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local allowed = sorted_names(shape.fields)
    for _, k in ipairs(keys) do
      local sub = type(k) == "string" and shape.fields[k]
      local v = data[k]
      if not sub then
        local h = names.suggest(tostring(k), allowed)
        problem(k, format("unknown key '%s'%s", tostring(k), path == "" and "" or (" in " .. path)) ..
          (h and (" (did you mean '" .. h .. "'?)") or (" (" .. (path == "" and "a fixture" or path) .. " has " ..
          concat(allowed, ", ") .. ")")))
      elseif type(sub) == "string" then
        if not type_ok(sub, v) then
          problem(k, format("'%s'%s should be %s, not %s", k, path == "" and "" or (" in " .. path),
            sub == NUMBER and "a number" or sub == STRING and "text" or sub == BOOLEAN and "true or false" or sub,
            type(v) == "string" and ("the text \"" .. v .. "\"") or type(v)))
        end
      elseif type(v) ~= "table" then
        problem(k, format("'%s'%s should be a table, not %s", k, path == "" and "" or (" in " .. path), type(v)))
      else
        walk(sub, v, path == "" and k or (path .. "." .. k), problem)
      end
    end
  elseif shape.kind == "list" then
    if type(data) ~= "table" then return end
    for k, v in pairs(data) do
      if type(k) ~= "number" then
        problem(k, format("%s should be a list; found the key '%s'", path, tostring(k)))
      elseif type(v) ~= "table" then
        problem(nil, format("%s item %d should be a table, not %s", path, k, type(v)))
      else
        walk(shape.item, v, path .. " item " .. k, problem)
      end
    end
  elseif shape.kind == "map" then
    if type(data) ~= "table" then return end
    for k, v in pairs(data) do
      if shape.item ~= ANY and type(v) ~= "table" then
        problem(k, format("'%s' in %s should be a table, not %s", tostring(k), path, type(v)))
      elseif shape.item ~= ANY then
        walk(shape.item, v, path .. "." .. tostring(k), problem)
      end
    end
  end
end

-- Line (Lua) or line:column (JSON) where `key` is written, or nil.
local function locate(src, is_json, key, cache)
  if type(key) ~= "string" or type(src) ~= "string" then return nil end
  if is_json then
    local a = src:find('"' .. key:gsub("%p", "%%%0") .. '"%s*:')
    if not a then return nil end
    return format("line %d column %d", lexer.position(src, a))
  end
  cache.tokens = cache.tokens or lexer.tokens(src)
  local t = cache.tokens
  for i, tok in ipairs(t) do
    if tok.kind == "name" and tok.value == key and t[i + 1] and t[i + 1].kind == "op" and t[i + 1].value == "="
      and not (t[i - 1] and t[i - 1].value == ".") then
      return "line " .. tok.line
    end
    if tok.kind == "string" and tok.value == key and t[i - 1] and t[i - 1].value == "[" and t[i + 2]
      and t[i + 2].value == "=" then
      return "line " .. tok.line
    end
  end
end

-- Problems of one fixture or explain document: a list of messages naming the file and where; empty when clean.
function _M.check(data, file, src, shape)
  local is_json = file:match("%.json$") ~= nil
  local out, cache = {}, {}
  local function problem(key, message)
    local at = locate(src, is_json, key, cache)
    out[#out + 1] = message .. " in " .. file .. (at and (" " .. at) or "")
  end
  walk(shape or FIXTURE, data, "", problem)
  -- a fixture that checks nothing would always PASS
  if (shape or FIXTURE) == FIXTURE and type(data) == "table" and type(data.expect) == "table" then
    local e = data.expect
    if next(e) == nil then
      problem("expect", "expect checks nothing; give points, redemption or attributes")
    elseif type(e.redemption) == "table" and next(e.redemption) == nil then
      problem("redemption", "expect.redemption checks nothing; give allowed, min, max, multiple_of, points, value " ..
        "or reason")
    end
    if type(e.redemption) == "table" and type(e.redemption.reason) == "string" and
      not e.redemption.reason:find("%S") then
      problem("reason", "expect.redemption.reason is empty, so every reason would match")
    end
    if data.requested_points ~= nil and e.redemption == nil then
      problem("requested_points", "requested_points is only used by a redemption expectation, and there is none")
    end
  end
  return out
end

function _M.check_explain(data, file, src)
  if type(data) == "table" and data.cart == nil and data.lines ~= nil then
    return _M.check(data, file, src, CART)
  end
  return _M.check(data, file, src, EXPLAIN_DOC)
end

-- cjson says "at character 396": the analyst needs the line and column.
function _M.json_error(src, err)
  err = tostring(err)
  local at = tonumber(err:match("at character (%d+)"))
  if not at or type(src) ~= "string" then return err end
  local line, col = lexer.position(src, math.min(at, #src + 1))
  return (err:gsub("at character %d+", format("at line %d column %d", line, col)))
end

return _M

-- Reading what an analyst hands to `rules explain` (and friends): a fixture (.lua or .json) or a bare cart,
-- checked strictly (unknown keys, JSON errors as line:column). Returns customer, cart, requested or nil, message.
local _M = {}

local util = require("loyalty.util")
local sandbox = require("loyalty.rules.sandbox")
local strict = require("loyalty.rules.strict")
local names = require("loyalty.rules.names")

function _M.decode_json(text, what)
  local ok, cjson = pcall(require, "cjson.safe")
  if not ok then return nil, "reading " .. what .. " needs lua-cjson" end
  local v, e = cjson.decode(text)
  if v == nil then return nil, what .. " is not valid JSON: " .. strict.json_error(text, e) end
  local function strip(t, depth)
    if depth > 50 then return end
    for k, x in pairs(t) do
      if x == cjson.null then t[k] = nil elseif type(x) == "table" then strip(x, depth + 1) end
    end
  end
  if type(v) == "table" then strip(v, 0) end
  return v
end

-- A .lua data file: compiled as text in an empty environment, under the rules' limits.
local function read_lua(text, what, limits)
  local env = setmetatable({}, { __index = function(_, k) error("unknown name '" .. tostring(k) .. "'", 2) end,
    __newindex = function(_, k) error("this file is data only; cannot set '" .. tostring(k) .. "'", 2) end })
  local fn, err = sandbox.compile(text, what, env)
  if not fn then
    local d = sandbox.describe_error(err, what)
    local line, msg = names.blame_line(text, d.line, d.message)
    return nil, msg .. (line and (" in " .. what .. " line " .. line) or "")
  end
  local ok, data = sandbox.run(limits or sandbox.DEFAULTS, true, fn)
  if not ok then
    local d = sandbox.describe_error(data, what)
    return nil, d.message .. (d.line and (" in " .. what .. " line " .. d.line) or "")
  end
  return data
end

-- path -> doc (the table in the file) or nil, message.
function _M.read_doc(path, limits)
  local text, e = util.read_file(path)
  if not text then return nil, "cannot read " .. path .. ": " .. tostring(e) end
  local doc, err
  if path:match("%.lua$") then doc, err = read_lua(text, path, limits)
  else doc, err = _M.decode_json(text, path) end
  if doc == nil then return nil, err end
  if type(doc) ~= "table" then return nil, path .. " should hold an object: a cart or { customer, cart }" end
  local problems = strict.check_explain(doc, path, text)
  if #problems > 0 then return nil, table.concat(problems, "\n") end
  return doc
end

-- doc -> customer, cart, requested_points (a fixture-like document or a bare cart).
function _M.split(doc)
  if doc.cart ~= nil then
    local customer = {}
    for k, v in pairs(type(doc.customer) == "table" and doc.customer or {}) do customer[k] = v end
    return customer, doc.cart, doc.requested_points
  end
  return {}, doc, nil
end

return _M

-- Fixture carts stored next to the rules: fixtures/*.lua (a data table, loaded in an empty sandbox) or
-- fixtures/*.json. Each says: customer + cart (+ requested points) -> expected points, redemption, attributes.
local _M = {}

local sandbox = require("loyalty.rules.sandbox")
local files = require("loyalty.rules.files")
local util = require("loyalty.util")
local explain = require("loyalty.rules.explain")

local format = string.format

-- A fixture is one cart; a file above this is refused before it is parsed.
local MAX_BYTES = 1024 * 1024
local function too_big(src, name)
  if #src > MAX_BYTES then return name .. " is " .. #src .. " bytes; a fixture may have at most " .. MAX_BYTES end
end

local function show(v)
  if type(v) == "string" then return format("%q", #v > 200 and (v:sub(1, 200) .. "...") or v) end
  if type(v) == "number" then return explain.num(v) end
  if v == nil then return "(nothing)" end
  return tostring(v)
end

local function read_lua(path, name, limits)
  local src = util.read_file(path)
  if not src then return nil, "cannot read " .. name end
  if too_big(src, name) then return nil, too_big(src, name) end
  local env = setmetatable({}, { __index = function(_, k) error("unknown name '" .. tostring(k) .. "'", 2) end,
    __newindex = function(_, k) error("fixtures are data only; cannot set '" .. tostring(k) .. "'", 2) end })
  local fn, err = sandbox.compile(src, name, env)
  if not fn then
    local d = sandbox.describe_error(err, name)
    d.line, d.message = require("loyalty.rules.names").blame_line(src, d.line, d.message)  -- the mistake's line
    return nil, d.message .. (d.line and (" in " .. name .. " line " .. d.line) or (" in " .. name))
  end
  local ok, data = sandbox.run(limits, true, fn)
  sandbox.take_output()
  if not ok then
    local d = sandbox.describe_error(data, name)
    return nil, d.message .. (d.line and (" in " .. (d.file or name) .. " line " .. d.line) or (" in " .. name))
  end
  return data
end

local function read_json(path, name)
  local src = util.read_file(path)
  if not src then return nil, "cannot read " .. name end
  if too_big(src, name) then return nil, too_big(src, name) end
  local ok_cjson, cjson = pcall(require, "cjson.safe")
  if not ok_cjson then return nil, "reading " .. name .. " needs lua-cjson, which is not installed" end
  local data, err = cjson.decode(src)
  if data == nil then
    return nil, name .. " is not valid JSON: " .. require("loyalty.rules.strict").json_error(src, err)
  end
  -- JSON null comes back as a sentinel; treat it as absent
  local function strip(t)
    for k, v in pairs(t) do
      if v == cjson.null then t[k] = nil elseif type(v) == "table" then strip(v) end
    end
  end
  if type(data) == "table" then strip(data) end
  return data
end

-- Reads one fixture file (lua or json); returns the fixture table or nil, message.
function _M.read(path, name, limits)
  local data, err
  if name:match("%.json$") then data, err = read_json(path, name) else data, err = read_lua(path, name, limits) end
  if data == nil then return nil, err end
  if type(data) ~= "table" then
    return nil, name .. " should return a table { customer = ..., cart = ..., expect = ... }"
  end
  if type(data.cart) ~= "table" then return nil, name .. " has no cart" end
  if type(data.expect) ~= "table" then return nil, name .. " has no expect = { ... } table" end
  -- unknown keys anywhere are errors: a misspelt expectation would otherwise pass unchecked (loyalty.rules.strict)
  local problems = require("loyalty.rules.strict").check(data, name, util.read_file(path))
  if #problems > 0 then return nil, table.concat(problems, "\n") end
  -- what strict leaves (a shape no evaluation could take) is one FAIL line, never a raise
  local problem = _M.check_shape(data)
  if problem then return nil, name .. ": " .. problem end
  return data
end

-- The parts of a fixture the runner reads, checked for their type (a fixture is analyst-written data):
-- returns nil or the problem in words.
function _M.check_shape(fx)
  if fx.name ~= nil and type(fx.name) ~= "string" then return "name should be text, not a " .. type(fx.name) end
  if fx.customer ~= nil and type(fx.customer) ~= "table" then return "customer should be a table" end
  if type(fx.cart.lines) ~= "table" then return "cart.lines should be a list of lines" end
  for i, line in ipairs(fx.cart.lines) do
    if type(line) ~= "table" then return "cart line " .. i .. " should be a table" end
  end
  local e = fx.expect
  if e.points ~= nil and type(e.points) ~= "number" then return "expect.points should be a number" end
  if e.redemption ~= nil then
    if type(e.redemption) ~= "table" then return "expect.redemption should be a table" end
    local reason = e.redemption.reason
    if reason ~= nil and type(reason) ~= "string" then return "expect.redemption.reason should be text" end
  end
  if e.attributes ~= nil then
    if type(e.attributes) ~= "table" then return "expect.attributes should be a table of SKU = { ... }" end
    for sku, want in pairs(e.attributes) do
      if type(want) ~= "table" then
        return "expect.attributes[" .. show(tostring(sku)) .. "] should be a table of attribute = value"
      end
    end
  end
end

function _M.list(dir)
  return files.list(dir .. "/fixtures", { ".lua", ".json" })
end

local REDEMPTION_KEYS = { "allowed", "min", "max", "multiple_of", "points", "value" }

-- Compares one fixture against the rule set; returns {name, file, ok, diff = {lines}}.
local function run_one(ruleset, fx, file)
  local result = { name = fx.name or file, file = file, diff = {} }
  local diff = result.diff
  local customer = fx.customer or {}
  local expect = fx.expect
  if expect.points ~= nil then
    local res, err = ruleset:earn(customer, fx.cart)
    result.earn = res  -- what was checked, for coverage (loyalty.rules.coverage)
    if not res then
      diff[#diff + 1] = "points: expected " .. show(expect.points) .. ", but earning failed: " .. util.message_of(err)
    elseif res.points ~= expect.points then
      diff[#diff + 1] = format("points: expected %s, got %s", show(expect.points), show(res.points))
    end
  end
  if expect.redemption ~= nil then
    local res, err = ruleset:redemption(customer, fx.cart, fx.requested_points)
    result.redemption = res
    local before = #diff
    if not res then diff[#diff + 1] = "redemption: the check failed: " .. util.message_of(err)
    else
      for _, k in ipairs(REDEMPTION_KEYS) do
        local want = expect.redemption[k]
        if want ~= nil and want ~= res[k] then
          diff[#diff + 1] = format("redemption %s: expected %s, got %s", k, show(want), show(res[k]))
        end
      end
      if expect.redemption.reason ~= nil and not res.reason:find(expect.redemption.reason, 1, true) then
        diff[#diff + 1] = format("redemption reason: expected it to mention %s, got %s", show(expect.redemption.reason),
          show(res.reason))
      end
      if #diff > before then diff[#diff + 1] = "  (the rules said: " .. res.reason .. ")" end
    end
  end
  if expect.attributes ~= nil then
    local by_sku = {}
    for i, line in ipairs(fx.cart.lines) do by_sku[tostring(line.sku or i)] = line end
    local skus = {}
    for sku in pairs(expect.attributes) do skus[#skus + 1] = tostring(sku) end
    table.sort(skus)
    for _, sku in ipairs(skus) do
      local line = by_sku[sku]
      result.attribute_lines = result.attribute_lines or {}
      result.attribute_lines[#result.attribute_lines + 1] = line
      if not line then diff[#diff + 1] = "attributes: the cart has no line with SKU " .. sku
      else
        local got = {}
        for _, a in ipairs(ruleset:line_attributes(line)) do got[a.name] = a.value end
        local want = expect.attributes[sku]
        local names, seen = {}, {}
        for n in pairs(want) do names[#names + 1] = n; seen[n] = true end
        for n in pairs(got) do if not seen[n] then names[#names + 1] = n end end
        table.sort(names)
        for _, n in ipairs(names) do
          if want[n] ~= got[n] then
            diff[#diff + 1] = format("attributes of %s, %s: expected %s, got %s", sku, n, show(want[n]), show(got[n]))
          end
        end
      end
    end
  end
  result.ok = #diff == 0
  return result
end

-- Compares one fixture against the rule set; returns {name, file, ok, diff = {lines}}. Never raises:
-- a fixture of the wrong shape is a failure saying what is wrong.
function _M.run_one(ruleset, fx, file)
  local problem = type(fx) ~= "table" and "the fixture is not a table" or
    (type(fx.cart) ~= "table" or type(fx.expect) ~= "table") and "the fixture needs cart and expect tables" or
    _M.check_shape(fx)
  if problem then return { name = file, file = file, ok = false, diff = { problem } } end
  local ok, res = pcall(run_one, ruleset, fx, file)
  if ok then return res end
  return { name = fx.name or file, file = file, ok = false, diff = { "the fixture could not be run: " ..
    tostring(type(res) == "table" and res.message or res) } }
end

function _M.run_all(ruleset)
  local out = { passed = 0, failed = 0, results = {}, hash = ruleset.hash }
  for _, file in ipairs(_M.list(ruleset.dir)) do
    local ok, fx, err = pcall(_M.read, ruleset.dir .. "/fixtures/" .. file, file, ruleset.limits)
    if not ok then fx, err = nil, tostring(fx) end
    local r
    if not fx then
      r = { name = file, file = file, ok = false, diff = {} }
      for msg in util.message_of(err):gmatch("[^\n]+") do
        r.diff[#r.diff + 1] = "could not read the fixture: " .. msg
      end
    else r = _M.run_one(ruleset, fx, file) end
    out.results[#out.results + 1] = r
    if r.ok then out.passed = out.passed + 1 else out.failed = out.failed + 1 end
  end
  return out
end

return _M

-- Temporary rule-set directories for the rules specs.
local _M = {}

local made = {}

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function _M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- A fresh directory holding `files` ({ ["name"] = text }, names may contain "fixtures/").
function _M.dir(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. sh_quote(dir) .. "/fixtures"))
  made[#made + 1] = dir
  for name, text in pairs(files or {}) do _M.write(dir .. "/" .. name, text) end
  return dir
end

-- A temporary copy of examples/rules.
function _M.copy_examples()
  local dir = _M.dir()
  assert(os.execute("cp -r examples/rules/. " .. sh_quote(dir)))
  return dir
end

function _M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function _M.cleanup()
  for _, d in ipairs(made) do os.execute("rm -rf " .. sh_quote(d)) end
  made = {}
end

_M.PROGRAM = 'currency = "INR"\nrounding = "floor"\nround_per = "line"\n'

-- A rule set whose earn.lua calls bonus() with `body` as its body (line 4 of earn.lua).
function _M.bonus_dir(body)
  return _M.dir({
    ["program.lua"] = _M.PROGRAM,
    ["earn.lua"] = "points_earned = 1\nfor_every = 100\nfunction bonus(line, customer, cart)\n" .. body .. "\nend\n",
  })
end

_M.CUSTOMER = { tier = "GOLD", points = 1000 }
_M.CART = { currency = "INR", lines = { { sku = "A", qty = 1, price = 1000, categories = { "x" } } } }

-- The rules error of earning with a bonus() whose body is `body` (the evaluation must fail).
function _M.earn_error(body, opts)
  local rs = assert(require("loyalty.rules").load(_M.bonus_dir(body), opts))
  local res, err = rs:earn(_M.CUSTOMER, _M.CART)
  assert(res == nil, "the evaluation should have failed")
  assert(err.kind == "rules", "a rules error expected, got " .. tostring(err.kind))
  return err
end

return _M

-- `loyalty rules explain DIR CART [--tier T] [--points N] [--redeem N] [--crm SETTINGS]`, from parsed options.
-- opts: dir, cart (path to .json/.lua), tier, points, redeem (numbers), crm (a store settings file), out, err
-- (writers; default stdout/stderr). Returns the exit code: 0 explained, 1 invalid rules or input, 2 misuse.
local _M = {}

local rules = require("loyalty.rules")
local input = require("loyalty.cli.rules_input")
local names = require("loyalty.rules.names")

local function writer(f) return function(s) f:write(s) end end

function _M.run(opts)
  local out = opts.out or writer(io.stdout)
  local err = opts.err or writer(io.stderr)
  local rs, lerr = rules.load(opts.dir)
  if not rs then out("error: " .. lerr.message .. "\n") return 1 end
  local doc, derr = input.read_doc(opts.cart, rs.limits)
  if not doc then
    for line in tostring(derr):gmatch("[^\n]+") do out("error: " .. line .. "\n") end
    return 1
  end
  local customer, cart, requested = input.split(doc)
  if opts.tier then customer.tier = opts.tier end
  -- shown as the store compares it: the CRM's `gold` is the rules' GOLD
  if customer.tier ~= nil then customer.tier = names.tier(customer.tier) end
  if opts.points then customer.points = opts.points end
  if opts.redeem then requested = opts.redeem end
  out(rs:explain(customer, cart, requested))
  local code = 0
  local e_err, r_err
  if rs.compiled.earn then e_err = select(2, rs:earn(customer, cart)) end
  if rs.compiled.redemption then r_err = select(2, rs:redemption(customer, cart, requested)) end
  for _, e in ipairs({ e_err, r_err }) do
    if e then code = 1 end
  end
  if e_err or r_err then
    local first = e_err or r_err
    err("loyalty rules explain: " .. opts.cart .. " could not be evaluated: " .. tostring(first.message or first) ..
      "\n")
  end
  if opts.crm and code == 0 then
    return require("loyalty.rules.crm_preview").explain_cli(rs, opts, customer, cart, out, err)
  end
  return code
end

return _M

-- The CRM's own answer for one cart, beside the rules' arithmetic: `rules explain DIR CART --crm SETTINGS`.
-- Only where the provider documents a dry run that books nothing (its storefront's `preview`); any
-- other provider is refused.
local providers = require "loyalty.providers"

local _M = {}

local num = require("loyalty.rules.engine").num

local format = string.format

-- The dry runs the providers document, for the refusal's message: "<title> (<what>)".
local function dry_runs()
  local list = {}
  for _, p in ipairs(providers.all()) do
    local sf = providers.part(p, "storefront")
    if sf.preview then list[#list + 1] = p.title .. " (" .. tostring(sf.PREVIEW_NAME) .. ")" end
  end
  return #list > 0 and table.concat(list, ", ") or "none"
end

--[[ Asks the CRM. program: a loyalty.program; user: the store user ({ mobile = ... }); cart.
Returns { award, eligible_spend, min_spend, max_spend, wallet_balance, allow_spending, reduction_method } or
nil, err. Nothing is booked: the preview is the documented dry run. ]]
function _M.preview(program, user, cart)
  local preview = program.storefront.preview
  if not preview then
    return nil, "the " .. tostring(program.settings.provider) .. " API documents no dry run of an order; " ..
      "--crm needs a provider that does: " .. dry_runs()
  end
  local ident, err = program:identify(user, true)
  if not ident then return nil, tostring(err.message or err) end
  local r
  r, err = preview(program, ident, cart)
  if not r then return nil, tostring(err.message or err) end
  return r
end

-- The lines `explain --crm` prints: the CRM's figures next to the rules' own.
function _M.lines(rs, earn, redemption, p, name)
  local out = {}
  local function w(...) out[#out + 1] = format(...) end
  local value = rs.compiled.redemption and rs.compiled.redemption.point_value
  w("")
  w("The CRM's own answer (%s; nothing is booked):", name or "its dry run")
  local local_award = earn and earn.points
  local local_money = local_award and value and local_award * value
  w("  award:       CRM %s; rules %s%s", format("%.2f", p.award),
    local_award and (num(local_award) .. " points") or "-",
    local_money and format(" = %.2f at point_value %s", local_money, num(value)) or "")
  if local_money then
    local diff = p.award - local_money
    if math.abs(diff) >= 0.005 then
      w("  DIFFERENT: the CRM awards %s%.2f against the rules' estimate", diff > 0 and "+" or "", diff)
    else
      w("  the same")
    end
  end
  w("  spendable:   CRM %.2f now (wallet %.2f; per transaction %.2f to %s; spending %s, %s)", p.eligible_spend,
    p.wallet_balance, p.min_spend, p.max_spend and format("%.2f", p.max_spend) or "no maximum",
    p.allow_spending and "allowed" or "NOT allowed", p.reduction_method)
  if redemption and value then
    w("               rules at most %s points = %.2f on this order (limited by %s)", num(redemption.max),
      redemption.max * value, redemption.limited_by)
  end
  return out
end

--- explain's --crm part; returns the exit code (0 shown, 1 the CRM could not answer, 2 misuse).
function _M.explain_cli(rs, opts, customer, cart, out, err)
  if not opts.customer then
    err("loyalty rules explain: --crm needs --customer ID (the store's identifier of the customer)\n")
    return 2
  end
  local program, perr = require("loyalty").program(opts.crm)
  if not program then err("loyalty rules explain: " .. opts.crm .. ": " .. tostring(perr.message or perr) .. "\n")
    return 2 end
  local key = program.settings.identifier
  local user = { [key:match("^attribute:(.+)$") or key] = opts.customer, tier = customer.tier }
  local p, e = _M.preview(program, user, cart)
  program:close()
  if not p then
    err("loyalty rules explain: the CRM did not answer: " .. e .. "\n")
    return program.storefront.preview and 1 or 2
  end
  local earn = rs.compiled.earn and rs:earn(customer, cart)
  local red = rs.compiled.redemption and rs:redemption({ tier = customer.tier, points = p.wallet_balance /
    (rs.compiled.redemption.point_value) }, cart)
  local provider = providers.get(program.settings.provider)
  local name = provider.title .. " " .. tostring(program.storefront.PREVIEW_NAME)
  for _, l in ipairs(_M.lines(rs, earn, red, p, name)) do out(l .. "\n") end
  return 0
end

return _M

-- Capillary's outbox replay policy: the request each entry kind replays, the codes that say an
-- earlier attempt already landed, and the lookup a return needs first (it has no key at the CRM).
local storefront = require "loyalty.providers.capillary.storefront"

local _M = {}

local function codes(list)
  local set = {}
  for _, c in ipairs(list) do set[c] = true end
  return function(err) return err ~= nil and set[tonumber(err.code)] == true end
end

_M.kinds = {
  -- An order: bill numbers are unique at the CRM, 604 = it has this bill already.
  transaction_add = { request = function(ops, p) return ops.transaction_add(p) end, already = codes { 604 } },
  -- A return shares its order's bill number, so 604 says nothing about it; 626/628/633/634 say the
  -- bill is returned already. It carries its own reference (storefront.RETURN_REF_FIELD): a replay
  -- first asks whether that return is there.
  transaction_return = {
    request = function(ops, p)
      local spec, err = ops.transaction_add(p)
      if spec then spec.idempotent, spec.duplicate_code = false, nil end
      return spec, err
    end,
    already = codes { 626, 628, 633, 634 },
    lookup = function(client, p) return storefront.find_return(client, p) end,
  },
  customer_add = { request = function(ops, p) return ops.customer_add(p) end }, -- customer/add upserts
  customer_subscriptions = { request = function(ops, p) return ops.customer_subscriptions(p) end }, -- sets a state
  -- A redemption reversal: 3802 = already reversed.
  points_reverse = { request = function(ops, p) return ops.v2_points_reverse(p) end, already = codes { 3802 } },
}

return _M

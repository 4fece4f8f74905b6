-- Capillary v2 POST /v2/points/reverse: giving back (part of) a v1.1 redemption.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.capillary.store")
local engine = require("loyalty.sandbox.capillary.engine")
local common = require("loyalty.sandbox.capillary.common")
local inferred = require("loyalty.sandbox.capillary.inferred")

local _M = {}
local array = json.array
local H = inferred.V2_HTTP

local function points_reverse(req)
  local body, status, err = common.v2_body(req)
  if not body then return status, err end
  local rid, points = body.redemptionId, tonumber(body.pointsToBeReversed)
  if type(rid) ~= "string" or rid == "" or not points or points <= 0 then
    return common.v2_error(H.invalid, 901, "Invalid points or redemption id")
  end
  local red = store.get_json("red:" .. rid)
  if not red or not red.customer_id then return common.v2_error(H.invalid, 902, "Redemption id does not exist") end
  local ident = type(body.identifier) == "table" and body.identifier or {}
  local c = common.find_v2(ident.type, ident.value)
  if not c or c.id ~= red.customer_id then return common.v2_error(H.invalid, 904, "Invalid customer details") end
  local left = red.points - (red.points_reversed or (red.reversed and red.points or 0))
  if left <= 0 then return common.v2_error(H.invalid, 3802, "Redemption already reversed") end
  if points > left + 1e-9 then return common.v2_error(H.invalid, 901, "Invalid points: more than redeemed") end
  local result = cstore.locked(c, function()
    red = store.get_json("red:" .. rid)
    local now_left = red.points - (red.points_reversed or 0)
    if now_left <= 0 or points > now_left + 1e-9 then return nil end
    local cur = cstore.customer(c.id)
    local reversal_id = common.random_id(inferred.REDEMPTION_ID_ALPHABET, 6)
    engine.book_reversal(cur, points, rid)
    cstore.put_customer(cur)
    red.points_reversed = (red.points_reversed or 0) + points
    -- [INF] partial reversals (inferred.PARTIAL_REVERSALS): reversed once nothing is left
    red.reversed = red.points_reversed >= red.points
    red.reversals = red.reversals or {}
    red.reversals[#red.reversals + 1] = { id = reversal_id, points = points, at = cstore.now_string(),
                                          attribution = req.attribution }
    red.reversal = red.reversals[1]
    store.set_json("red:" .. rid, red)
    return reversal_id
  end)
  if not result then return common.v2_error(H.invalid, 3802, "Redemption already reversed") end
  return 200, { redemptionId = rid, pointsToBeReversed = points, orgId = req.cfg.org.id,
    identifier = { type = ident.type, value = ident.value }, customerId = c.id, pointsReversed = points,
    reversalId = result, warnings = array {} }
end

_M.reverse = points_reverse

return _M

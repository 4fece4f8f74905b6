-- Reading Capillary v1.1 requests, for every v1.1 resource: flags, the root.<name> items of a
-- body, and the customer named by query arguments.
local json = require("loyalty.sandbox.json")
local common = require("loyalty.sandbox.capillary.common")

local _M = {}
local list = common.list

--- Runs one(t) over the root.<name> items: the replies (an array) and how many succeeded; or nil,
-- status, body of the 400 reply.
function _M.each_item(req, name, one)
  local items, status, body = _M.root_items(req, name)
  if not items then return nil, status, body end
  local out, ok_count = json.array {}, 0
  for _, t in ipairs(items) do
    local item = one(t)
    if item.item_status.success == "true" then ok_count = ok_count + 1 end
    out[#out + 1] = item
  end
  return out, ok_count
end

function _M.truthy(v) return v == true or v == "true" or v == "1" or v == 1 end

--- The items of body.root[name] as an array, or nil, status, body of the 400 reply.
function _M.root_items(req, name)
  local root = type(req.body) == "table" and req.body.root
  if type(root) ~= "table" or root[name] == nil then
    return nil, common.v11_error(400, 400, "Input is invalid: root." .. name .. " is required")
  end
  return list(root[name])
end

local GET_KINDS = { "mobile", "email", "external_id", "card_number", "id", "user_id" }

--- The first customer identifier in the query: kind, value; or nil, nil and the 400 reply.
function _M.identifier_arg(args)
  for _, k in ipairs(GET_KINDS) do
    if type(args[k]) == "string" and args[k] ~= "" then return k, args[k] end
  end
  return nil, nil, common.v11_error(400, 400, "Input is invalid: a customer identifier is required")
end

local POINT_KINDS = { "mobile", "email", "external_id", "card_number", "card_external_id", "id", "user_id" }

--- The customer the points and coupon queries name: customer or nil, kind, value (as identify_v11).
function _M.customer_from_args(args)
  local t = {}
  for _, k in ipairs(POINT_KINDS) do if type(args[k]) == "string" then t[k] = args[k] end end
  return common.identify_v11(t)
end

--- The identifiers a points or coupon item echoes: c's, or the one given when c is unknown.
function _M.ids_of(c, kind, value)
  if not c then return { [kind or "mobile"] = value } end
  return { mobile = c.mobile or "", email = c.email or "", external_id = c.external_id or "" }
end



return _M

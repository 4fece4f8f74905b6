-- Capillary v2 in the sandbox (reference §3.3, §4.2, §4.4, §4.5, §4.7): the route table, path ->
-- {HTTP method, handler(req)}, one module a resource (customer, transaction, points, otp).
local customer = require("loyalty.sandbox.capillary.v2.customer")
local transaction = require("loyalty.sandbox.capillary.v2.transaction")
local points = require("loyalty.sandbox.capillary.v2.points")
local otp = require("loyalty.sandbox.capillary.v2.otp")

local _M = {}

_M.routes = {
  ["/v2/customers"] = { "POST", customer.post },
  ["/v2/customers/lookup"] = { "GET", customer.find },
  ["/v2/transactions"] = { "POST", transaction.post },
  ["/v2/points/reverse"] = { "POST", points.reverse },
  ["/v2/otp/generate"] = { "POST", otp.generate },
  ["/v2/otp/validate"] = { "POST", otp.validate },
  ["/v2/otp"] = { "GET", otp.get },
}

-- /v2/customers/{id}: GET reads, PUT updates.
_M.customer_id_routes = { GET = customer.get, PUT = customer.put }

return _M

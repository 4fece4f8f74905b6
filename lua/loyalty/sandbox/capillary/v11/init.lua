-- Capillary v1.1 in the sandbox: the route table, path -> {HTTP method, handler(req)}, one module a
-- resource (customer, transaction, points, coupon). Shapes follow ../shared/reference/capillary.md §4
-- per endpoint, including its string-vs-number quirks; undocumented choices: capillary/inferred.lua.
local customer = require("loyalty.sandbox.capillary.v11.customer")
local transaction = require("loyalty.sandbox.capillary.v11.transaction")
local points = require("loyalty.sandbox.capillary.v11.points")
local coupon = require("loyalty.sandbox.capillary.v11.coupon")

local _M = {}

_M.routes = {
  ["/v1.1/customer/add"] = { "POST", customer.add },
  ["/v1.1/customer/update"] = { "POST", customer.update },
  ["/v1.1/customer/get"] = { "GET", customer.get },
  ["/v1.1/customer/search"] = { "GET", customer.search },
  ["/v1.1/customer/subscriptions"] = { "POST", customer.subscriptions },
  ["/v1.1/transaction/add"] = { "POST", transaction.add },
  ["/v1.1/transaction/get"] = { "GET", transaction.get },
  ["/v1.1/customer/transactions"] = { "GET", transaction.of_customer },
  ["/v1.1/points/isredeemable"] = { "GET", points.isredeemable },
  ["/v1.1/points/validationcode"] = { "GET", points.validationcode },
  ["/v1.1/points/redeem"] = { "POST", points.redeem },
  ["/v1.1/coupon/isredeemable"] = { "GET", coupon.isredeemable },
  ["/v1.1/coupon/redeem"] = { "POST", coupon.redeem },
}

return _M

-- One shopper's walk through a storefront with a points program, against the local sandbox.
-- Run from the checkout: `make demo` (or `lua5.4 examples/checkout.lua` after `make`).
-- Uses the settings of examples/store.conf.lua and the rules in examples/rules/.
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
local walk = assert(loadfile(root .. "/examples/walk.lua"))(root)

local loyalty = require "loyalty"
local config = require "loyalty.program.config"
local sandbox = require "loyalty.sandbox"

local say, next_step, must = walk.say, walk.next_step, walk.must
local function money(x) return string.format("%.2f", x or 0) end

local sb = assert(sandbox.start {})
walk.on_failure(function() sb:stop() end)

local settings = must("Load the store settings", config.load(root .. "/examples/store.conf.lua"))
settings.crm.base_url = sb.url
settings.rules = root .. "/examples/rules"
local program = must("Start the points program", loyalty.program(settings))
say("The store's points program talks to the sandbox CRM at %s.", sb.url)
say("")

-- 1. Sign-up, CRM first: the CRM must accept the shopper before the store account exists.
local becky = { mobile = "+91 98123 45678", firstname = "Becky", subscriptions = { email = true, sms = false } }
local accounts = {}
local signed = must("Sign up", program:sign_up(becky, function(user, crm_customer)
  accounts[user.mobile] = { firstname = user.firstname, crm_id = crm_customer and crm_customer.id }
  return accounts[user.mobile]
end))
say("%2d. Becky signs up with her mobile. The CRM registered her first (customer %s), then the store",
    next_step(), tostring(signed.customer.id))
say("    created her account.")

-- At a physical store a cashier adds her last name and email to her CRM profile...
local till = must("Update at the till", program.client:customer_add {
  mobile = "919812345678", lastname = "Thatcher", email = "becky@example.com" })
assert(till)

-- 2. ...so at her next online login the blank fields of her store profile are filled in.
local login = must("Login", program:login(becky))
becky = login.profile
say("%2d. Becky logs in. Her store profile lacked her %s; the CRM filled them in:\n    %s %s, %s.",
    next_step(), table.concat(login.changed, " and "), becky.firstname, becky.lastname, becky.email)

-- 3. Subscriptions: she wants email offers but no SMS.
must("Subscriptions", program:subscribe(becky, { email = true, sms = false }))
say("%2d. She opts in to email offers and out of SMS; both are posted to the CRM.", next_step())

-- 4. The points summary in the header of every page.
local s = must("Summary", program:summary(becky))
say("%2d. Her points bar: %d points (worth %s INR at the CRM's rate), tier %s. Redeem now? %s.\n    (%s)",
    next_step(), s.points, s.value and money(s.value) or "?", tostring(s.tier), s.can_redeem and "yes" or "no",
    s.reason or "")

-- 5. An order with mapped categories: each line carries its category attributes.
local order1 = {
  id = "WEB-1001", store_code = "store.one",
  lines = {
    { sku = "PHONE-X12-128", name = "X12 phone", qty = 1, price = 24999, discount = 999, amount = 24000,
      categories = { "mobiles", "electronics" } },
    { sku = "HDMI-2M", name = "HDMI cable 2 m", qty = 1, price = 599, amount = 599, categories = { "electronics" } },
  },
  gross = 25598, discount = 999, total = 24599,
}
local placed = must("Order placed", program:order_placed(becky, order1))
say("%2d. Order %s (%s INR, a phone and a cable) is posted with its lines' category attributes.",
    next_step(), order1.id, money(order1.total))
local function earned(r)
  -- Never a made-up 0: the CRM's after-state balance says what was earned, or the result says why not.
  if r.points_earned then return string.format("%d points", r.points_earned) end
  return "points not known yet (" .. tostring(r.points_earned_unknown) .. ")"
end
say("    The CRM awarded %s; her balance is now %d.", earned(placed), placed.balance or -1)

-- 6. A redemption quote on her next cart, within the analyst's limits.
local cart2 = {
  lines = { { sku = "SK-TSHIRT-M", name = "T-shirt", qty = 2, price = 499, amount = 998, categories = { "fashion" } } },
  shipping = 49, total = 1047,
}
local quote = must("Redemption quote", program:quote_redemption(becky, cart2))
if not quote.allowed then must("Redemption allowed", nil, quote.reason) end
say("%2d. At checkout (cart %s INR) the rules allow at most %d points (minimum %d, in steps of %d);",
    next_step(), money(cart2.total), quote.max, quote.min, quote.multiple_of or 1)
say("    the store offers %d points, worth %s INR at the CRM's rate.", quote.points, money(quote.value))

-- 7. OTP: the CRM sends her a code (read here from the sandbox, as her phone would show it).
must("Send OTP", program:send_otp(becky, quote.points))
local code = must("Read OTP", sb:otp { mobile = "919812345678" })
say("%2d. The CRM sends her a one-time code (%s).", next_step(), code)

-- 8. Redeem with the code. Retrying the same order never debits twice.
local red = must("Redeem", program:redeem(becky, { points = quote.points, otp = code, order_id = "WEB-1002",
                                                   cart = cart2 }))
local again = must("Redeem again", program:redeem(becky, { points = quote.points, otp = code, order_id = "WEB-1002",
                                                           cart = cart2 }))
say("%2d. She redeems %d points (redemption %s, %s INR off); %d points remain. A retried redeem for the",
    next_step(), red.points, red.redemption_id, money(red.value), red.balance)
say("    same order returns the same redemption (%s) and debits nothing more.", again.redemption_id)

-- 9. The order paid partly with points.
local order2 = {
  id = "WEB-1002", store_code = "store.two", lines = cart2.lines, gross = 1047,
  total = cart2.total - red.value, redemption = { id = red.redemption_id, points = red.points, value = red.value },
}
local placed2 = must("Order with points", program:order_placed(becky, order2))
say("%2d. Order %s is paid %s INR in points and %s INR in money, posted against store.two's own till;",
    next_step(), order2.id, money(red.value), money(order2.total))
say("    it earned %s (balance %d).", earned(placed2), placed2.balance or -1)

-- 10. She returns the cable from the first order.
local ret = must("Line return", program:order_returned(becky, order1, { lines = { order1.lines[2] } }))
say("%2d. She returns the cable from %s; the CRM takes back %d points for it.", next_step(), order1.id,
    ret.points_deducted)

-- 11. The final summary.
local final = must("Final summary", program:summary(becky))
say("%2d. Her points bar now: %d points (worth %s INR), tier %s.", next_step(), final.points,
    final.value and money(final.value) or "?", tostring(final.tier))
if final.point_value_mismatch then
  say("    Note: %s.", final.point_value_mismatch.message)
end

-- The CRM's own record agrees with what the store was told.
local state = must("Sandbox state", sb:state())
local tills = {}
for _, t in ipairs(state.transactions) do tills[#tills + 1] = t.number .. "@" .. tostring(t.attribution.till) end
say("")
say("The CRM recorded %d transactions (%s)\nand %d ledger entries.", #state.transactions,
    table.concat(tills, ", "), #state.ledger)
program:close()
sb:stop()
say("Every step succeeded.")

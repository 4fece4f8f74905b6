-- A till's walk through the CRM.COM Rewards POS flow, then the same store's web checkout through
-- loyalty.program, against the local sandbox. Run from the checkout: `make demo PROVIDER=crmcom`
-- (or `lua5.4 examples/crmcom-checkout.lua` after `make`). Settings: examples/crmcom.conf.lua.
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
local walk = assert(loadfile(root .. "/examples/walk.lua"))(root)

local loyalty = require "loyalty"
local config = require "loyalty.program.config"
local sandbox = require "loyalty.sandbox"
local crmcom = require "loyalty.providers.crmcom"

local say, next_step, must = walk.say, walk.next_step, walk.must
local function eur(x) return string.format("EUR %.2f", x or 0) end

local sb = assert(sandbox.start {})
walk.on_failure(function() sb:stop() end)

local check = walk.check

local settings = must("Load the store settings", config.load(root .. "/examples/crmcom.conf.lua"))
settings.crm.base_url = sb.url .. "/crmapi/rest/v2"
local program = must("Start the program", loyalty.program(settings))
local till = program.client
say("The store talks to the sandbox CRM.COM at %s/crmapi/rest/v2 as %s of %s.", sb.url, settings.crm.username,
    settings.crm.organisation)
say("")

-- The till: Eleni pays for coffee, a croissant and a gift card (which earns nothing).
local eleni = { card = "CARD-4000-0021" }
local basket = {
  { code = "COFFEE-L", quantity = 2, net = 8, vat = 1.52, total = 9.52 },
  { code = "CROISSANT", net = 2.5, vat = 0.48, total = 2.98 },
  { code = "GIFT-CARD", net = 20, vat = 0, total = 20 },
}

local who = must("Identify the customer", till:participant_show(eleni)).participant
local owner = who.accounts_receivable.account_owner
say("%2d. Eleni shows her card at the till; CRM.COM knows her as %s %s, participant %s.", next_step(),
    owner.first_name, owner.last_name, who.number)

local pv = must("Preview the purchase", till:purchase_preview { participant = eleni, lines = basket }).preview
say("%2d. The till previews the basket (%s): it will award %s; her wallet holds %s,", next_step(), eur(32.5),
    eur(pv.award), eur(pv.wallet_balance))
say("    of which %s may be spent here", eur(pv.eligible_spend))
say("    (between %s and %s per transaction, %s). The till offers %s.",
    eur(pv.min_spend), eur(pv.max_spend), pv.reduction_method == "FRONT_END_REDUCTION" and "reduced at the till"
    or "credited later", eur(pv.offer))
check("The preview offers money", pv.offer > 0, "nothing can be spent")

local purchase = must("Create the purchase", till:purchase_create {
  participant = eleni, lines = basket, reference = "POS-7001", unit = settings.crm.unit }).purchase
say("%2d. The sale is submitted as purchase %s (%s, %s): %s of cashback goes to her wallet.", next_step(),
    purchase.number, eur(purchase.total), purchase.state, eur(purchase.awarded))

local spend = must("Request a spend", till:spend_request_create {
  participant = eleni, purchase = { number = purchase.number }, amount = 40, reference = "SPEND-7001" }).spend
say("%2d. She asks to spend %s; CRM.COM grants %s (spend request %s), capped by what is left to pay.",
    next_step(), eur(spend.requested), eur(spend.actual), spend.number)

local close = crmcom.amount_to_collect(purchase, { spend }, pv.reduction_method)
say("%2d. Closing the sale: total %s, paid from the wallet %s, to collect %s.", next_step(), eur(close.total),
    eur(close.spent), eur(close.due))

local after = must("Wallet after the sale", till:purchase_preview { participant = eleni, lines = {} }).preview
check("Wallet arithmetic", math.abs(after.wallet_balance - (pv.wallet_balance + purchase.awarded - spend.actual))
      < 0.005, "the wallet does not add up")
say("    Her wallet: %s + %s awarded - %s spent = %s.", eur(pv.wallet_balance), eur(purchase.awarded),
    eur(spend.actual), eur(after.wallet_balance))
say("")

-- The web shop on the same program: Maria's balance, a spend on her order, the order, a return.
local maria = { mobile = "+357 99 000019", firstname = "Maria" }
local s = must("Summary", program:summary(maria))
say("%2d. Online, Maria's header shows a wallet of %s; spend now? %s.", next_step(), eur(s.points),
    s.can_redeem and "yes" or "no")

local cart = { lines = { { sku = "COFFEE-L", qty = 4, price = 4.76, amount = 19.04 } }, shipping = 3, total = 22.04 }
local quote = must("Quote", program:quote_redemption(maria, cart, 10))
check("Quote allowed", quote.allowed, quote.reason)
local too_little = must("Quote below the minimum", program:quote_redemption(maria, cart, 0.5))
check("Quote below the minimum refused", not too_little.allowed, "CRM.COM accepted a spend below its minimum")
say("%2d. At checkout (%s) spending %s is allowed; %s is not:", next_step(), eur(cart.total), eur(quote.value),
    eur(0.5))
say("    %s.", tostring(too_little.reason))

local red = must("Redeem", program:redeem(maria, { points = 10, order_id = "WEB-5001", cart = cart }))
say("%2d. She spends %s on order WEB-5001 (spend request %s on purchase %s);", next_step(), eur(red.value),
    red.redemption_id, red.purchase_number)
say("    she pays %s, and her wallet now holds %s.", eur(red.amount_due), eur(red.balance))

local order = { id = "WEB-5001", lines = cart.lines, shipping = cart.shipping, total = cart.total,
                redemption = { id = red.redemption_id, points = red.points, value = red.value } }
local placed = must("Order placed", program:order_placed(maria, order))
say("%2d. The order is confirmed: it is the same purchase, which earned %s; nothing is awarded twice.",
    next_step(), eur(placed.points_earned))

local partial, perr = program:order_returned(maria, order, { lines = { cart.lines[1] } })
check("Partial return refused", partial == nil and perr.kind == "config", "a partial return went through")
say("%2d. A return of some lines is refused before any call:\n    %s", next_step(), perr.message)

local ret = must("Full return", program:order_returned(maria, order))
say("%2d. She returns the whole order: the purchase is cancelled, %s of cashback taken back and the %s she",
    next_step(), eur(ret.points_deducted), eur(ret.points_reversed))
say("    spent refunded; her wallet is back to %s.", eur(ret.balance))
check("Wallet restored", math.abs((ret.balance or -1) - s.points) < 0.005, "the wallet was not restored")

-- The catalogue: products synchronised in parallel calls of at most 1,000.
local products = {}
for i = 1, 2500 do products[i] = { code = string.format("SKU-%05d", i), description = "Product " .. i } end
products[42] = { description = "a product without a code" }
local sync = must("Synchronise products", till:products_synchronise(products, { max_in_flight = 3 }))
check("Every batch answered", #sync.failed_batches == 0, "a batch failed")
say("%2d. The catalogue of %d products goes in %d parallel calls: %d synchronised, %d refused (%s).",
    next_step(), #products, sync.calls, #sync.processed, #sync.unprocessed,
    sync.unprocessed[1] and sync.unprocessed[1].error_code or "none")

local state = must("Sandbox state", sb:crmcom_state())
say("")
say("CRM.COM recorded %d purchases, %d spend requests, %d products and %d login(s).", #state.purchases,
    #state.spend_requests, state.products, state.logins)
program:close()
sb:stop()
say("Every step succeeded.")

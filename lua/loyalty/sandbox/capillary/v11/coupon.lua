-- Capillary v1.1 coupon/*: isredeemable and redeem of the seed's coupons.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.capillary.store")
local common = require("loyalty.sandbox.capillary.common")
local input = require("loyalty.sandbox.capillary.v11.input")

local _M = {}
local array, list, item_status = json.array, common.list, common.item_status

-- Coupons --------------------------------------------------------------------------------------

local function coupon_problem(c, cp, kind)
  if not kind then return nil end
  if not c then return { "701", "Customer not found" } end
  if not cp then return { "702", "Invalid coupon code" } end
  if cp.owner_id and cp.owner_id ~= c.id then return { "703", "Coupon not issued to this customer" } end
  if cp.valid_till < os.date("!%Y-%m-%d") then return { "712", "Coupon has expired" } end
  return nil
end

local function series_info(cp)
  return { description = cp.description, discount_code = cp.discount_code, valid_till = cp.valid_till,
    discount_type = cp.discount_type, discount_value = tostring(cp.discount_value), detailed_info = cp.detailed_info }
end

local function coupon_isredeemable(req)
  local args = req.args
  local c, kind, value = input.customer_from_args(args)
  if not kind or type(args.code) ~= "string" then
    return common.v11_error(400, 400, "Input is invalid: customer identifier and code are required")
  end
  local cp = store.get_json("coupon:" .. args.code)
  local r = { [kind] = value, code = args.code }
  local problem = coupon_problem(c, cp, kind)
  if problem then
    r.is_redeemable = "false"
    r.item_status = { status = "false", code = problem[1], message = problem[2] }
  elseif cp.redeemed then
    -- As documented: a redeemed voucher answers status "true" with code 706.
    r.is_redeemable = "false"
    r.item_status = { status = "true", code = "706", message = "Cannot redeem same voucher multiple times" }
  else
    r.is_redeemable = "true"
    r.item_status = { status = "true", code = "700", message = "Coupon can be redeemed" }
  end
  if cp and (input.truthy(args.details) or args.details == "extended") then r.series_info = series_info(cp) end
  return 200, { response = { status = { success = "true", code = "200", message = "SUCCESS" },
    coupons = { redeemable = r } } }
end

local function coupon_redeem_one(req, t)
  local c, kind, value = common.identify_v11(type(t.customer) == "table" and t.customer or {})
  local code = t.code or t.id
  code = code ~= nil and tostring(code) or nil
  local txn = list(t.transaction)[1] or {}
  local function fail(problem)
    return { code = code, customer = input.ids_of(c, kind, value),
             item_status = item_status(false, problem[1], problem[2]) }
  end
  if not code then return fail { "702", "Coupon code is required" } end
  local problem = coupon_problem(c, store.get_json("coupon:" .. code), kind or "mobile")
  if problem then return fail(problem) end
  return cstore.locked(c, function()
    local cp = store.get_json("coupon:" .. code)
    if cp.redeemed then return fail { "711", "Coupon is redeemed already" } end
    local n = store.next_seq("couponred")
    cp.redeemed = true
    cp.redemption = { id = tostring(4577800 + n), customer_id = c.id, transaction_number = txn.number,
      amount = txn.amount, attribution = req.attribution, custom_fields = common.merge_fields(nil, t.custom_fields),
      at = cstore.now_string() }
    store.set_json("coupon:" .. code, cp)
    return {
      customer = input.ids_of(c), redemptionId = cp.redemption.id, code = cp.code, discount_code = cp.discount_code,
      series_code = cp.series_code, is_absolute = cp.discount_type == "ABS" and "true" or "false",
      coupon_value = tostring(cp.discount_value),
      transaction = { amount = txn.amount and tostring(txn.amount) or "",
        number = txn.number and tostring(txn.number) or "" },
      series_info = array {}, side_effects = array {}, -- [DOC S-V11 _coupon.md "Redeem Coupon"]: both []
      item_status = item_status(true, "700", "Coupon processing successful"),
    }
  end)
end

local function coupon_redeem(req)
  local out, ok_count, body = input.each_item(req, "coupon", function(t) return coupon_redeem_one(req, t) end)
  if not out then return ok_count, body end
  return 200, { response = { status = common.v11_batch_status(ok_count, #out, true),
    coupons = { coupon = #out == 1 and out[1] or out } } }
end

_M.isredeemable, _M.redeem = coupon_isredeemable, coupon_redeem

return _M

-- Capillary v1.1 points/*: isredeemable (optionally issuing the OTP), validationcode and redeem,
-- with the program's limits (engine.lua) and validation codes (otp.lua).
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")
local cstore = require("loyalty.sandbox.capillary.store")
local engine = require("loyalty.sandbox.capillary.engine")
local common = require("loyalty.sandbox.capillary.common")
local otp = require("loyalty.sandbox.capillary.otp")
local inferred = require("loyalty.sandbox.capillary.inferred")
local input = require("loyalty.sandbox.capillary.v11.input")

local _M = {}
local array, item_status = json.array, common.item_status

local function points_isredeemable(req)
  local cfg, args = req.cfg, req.args
  local c, kind, value = input.customer_from_args(args)
  local points = tonumber(args.points)
  local ratio = cfg.program.points_currency_ratio or 1
  local r = input.ids_of(c, kind, value)
  r.points = points or args.points
  r.input_type = "points"
  r.points_currency_ratio = tostring(ratio)
  local err
  local pid = inferred.V11_PROGRAM_ID_REQUIRED
  if not kind then
    return common.v11_error(400, 400, "Input is invalid: a customer identifier is required")
  elseif tostring((type(args.program_id) == "table" and args.program_id[1]) or args.program_id or "")
         ~= tostring(cfg.program.id) then
    return common.v11_error(pid.http, pid.code, args.program_id and "Input is invalid: unknown program_id"
                            or pid.message)
  elseif not c then
    err = { code = 816, message = "Customer not found for organization" }
  else
    err = engine.redemption_error(cfg, c, points)
  end
  if err then
    r.is_redeemable = "false"
    r.item_status = item_status(false, err.code, err.message)
    local http = inferred.V11_HTTP_BY_CODE[err.code] or inferred.V11_ITEM_FAILURE_HTTP_STATUS
    return http, { response = { status = common.v11_status(false, inferred.V11_ALL_FAILED.code,
      inferred.V11_ALL_FAILED.message), points = { redeemable = r } } }
  end
  r.is_redeemable = "true"
  r.points_redeem_value = points * ratio
  r.points_redeem_local_value = points * ratio
  local warnings
  if input.truthy(args.issue_otp) then
    local rec = otp.issue(cfg, otp.customer_subject(c), "POINTS", { points = points, via = "isredeemable" })
    if not rec then warnings = { 876 } end
  end
  r.item_status = item_status(true, 800, "Points can be redeemed", warnings)
  return 200, { response = { status = common.v11_status(true, 200, "Success"), points = { redeemable = r } } }
end

local function points_validationcode(req)
  local cfg, args = req.cfg, req.args
  local c, kind, value = input.customer_from_args(args)
  if not kind then return common.v11_error(400, 400, "Input is invalid: a customer identifier is required") end
  local points = tonumber(args.points)
  local code = { mobile = c and c.mobile or value, points = tostring(args.points or "") }
  local err
  if not c then
    err = { code = "816", message = "Customer not found for organization" }
  elseif not points or (points <= 0 and inferred.V11_VALIDATIONCODE_POSITIVE_ONLY) then
    err = { code = "801", message = "Invalid points: points must be positive" }
  else
    code.user_id = tostring(c.id)
    if not otp.issue(cfg, otp.customer_subject(c), "POINTS", { points = points, via = "validationcode" }) then
      err = { code = tostring(inferred.V11_OTP_LIMIT.code), message = inferred.V11_OTP_LIMIT.message }
    end
  end
  if err then
    code.item_status = item_status(false, err.code, err.message)
    return 200, { response = { status = { success = "false", code = tostring(inferred.V11_ALL_FAILED.code),
      message = inferred.V11_ALL_FAILED.message }, validation_code = { code = code } } }
  end
  code.item_status = item_status(true, "200", "Validation Code Issued by SMS/Email")
  return 200, { response = { status = { success = "true", code = "200", message = "Operation Successful" },
    validation_code = { code = code } } }
end

local function redeem_one(req, t, skip_validation)
  local cfg = req.cfg
  local c, kind, value = common.identify_v11(type(t.customer) == "table" and t.customer or {})
  local ids = input.ids_of(c, kind, value)
  local function fail(code, message)
    ids.points_redeemed = t.points_redeemed ~= nil and tostring(t.points_redeemed) or ""
    ids.item_status = item_status(false, code, message)
    return ids
  end
  if not c then return fail(816, "Customer not found for organization") end
  local ext = t.external_reference_number ~= nil and tostring(t.external_reference_number) or nil
  if ext and inferred.REDEEM_DUPLICATE_RETURNS_ORIGINAL then
    local original = store.get_json("redext:" .. ext)
    if original then return original end
  end
  local points = tonumber(t.points_redeemed)
  local err = engine.redemption_error(cfg, c, points)
  if err and (err.code == 801 or err.code == 878) then return fail(err.code, err.message) end
  local subject = otp.customer_subject(c)
  if not skip_validation and not otp.matches(subject, "POINTS", t.validation_code) then
    return fail(808, "Invalid validation code")
  end
  if err then return fail(err.code, err.message) end
  local ratio = cfg.program.points_currency_ratio or 1
  local item = cstore.locked(c, function()
    local cur = cstore.customer(c.id)
    local again = engine.redemption_error(cfg, cur, points)
    if again then return fail(again.code, again.message) end
    local rid
    repeat
      rid = common.random_id(inferred.REDEMPTION_ID_ALPHABET, 6)
    until store.add("red:" .. rid, "{}")
    engine.book_redemption(cur, points, rid)
    cstore.put_customer(cur)
    if not skip_validation then otp.consume(subject, "POINTS") end
    local n = store.next_seq("red")
    store.set("redlist:" .. n, rid)
    local summary_id = 27141800 + n
    store.set_json("red:" .. rid, {
      id = rid, customer_id = cur.id, points = points, value = points * ratio, external_reference_number = ext,
      transaction_number = t.transaction_number, notes = t.notes, purpose = t.redemption_purpose,
      custom_fields = common.merge_fields(nil, t.custom_fields), attribution = req.attribution,
      validated = not skip_validation, reversed = false, at = cstore.now_string(), api = "v1.1",
    })
    return {
      mobile = cur.mobile or "", email = cur.email or "", external_id = cur.external_id or "",
      user_id = tostring(cur.id), redemption_id = rid, points_redeemed = tostring(points),
      redemption_purpose = t.redemption_purpose or "", redeemed_value = points * ratio,
      redeemed_local_value = points * ratio, balance = cur.loyalty_points,
      side_effects = { effect = array { {
        id = summary_id, case_value = "false", num_points = points, currency_value = points * ratio,
        validation_code = skip_validation and "" or tostring(t.validation_code),
        points_redemption_summary_id = tostring(summary_id),
        redeemed_on_bill_number = t.transaction_number and tostring(t.transaction_number) or "",
        redeemed_on_bill_id = -1, type = "points" } } },
      item_status = item_status(true, 800, "Points Redeemed"),
    }
  end)
  if ext and item.item_status.success == "true" then store.set_json("redext:" .. ext, item) end
  return item
end

local function points_redeem(req)
  local skip = input.truthy(req.args.skip_validation)
  local out, ok_count, body = input.each_item(req, "redeem", function(t) return redeem_one(req, t, skip) end)
  if not out then return ok_count, body end
  local st = common.v11_batch_status(ok_count, #out, false)
  if #out == 1 then st.total, st.success_count = nil, nil end
  local http = inferred.V11_ITEM_FAILURE_HTTP_STATUS
  if ok_count == 0 and #out == 1 then
    http = inferred.V11_HTTP_BY_CODE[tonumber(out[1].item_status.code)] or http
  end
  return http, { response = { status = st, responses = { points = #out == 1 and out[1] or out } } }
end

_M.isredeemable, _M.validationcode, _M.redeem = points_isredeemable, points_validationcode, points_redeem

return _M

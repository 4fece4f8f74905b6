-- The tiny provider's storefront mapping: the program's verbs in its operations.
-- `ident` is { key = "mobile"|..., value = "…" }: the tiny CRM knows members by their mobile number.
local errors = require "loyalty.errors"
local shape = require "loyalty.shape"

local _M = {}

local Backend = {}
Backend.__index = Backend

function _M.new(client, settings)
  return setmetatable({ client = client, settings = settings }, Backend)
end

--- A reversal refused because it was made already.
function _M.already_reversed(err) return err ~= nil and err.code == "ALREADY_REVERSED" end

local function not_carried(operation)
  return nil, errors.config(operation .. " is not available on the tiny CRM", operation)
end

function Backend:lookup(ident)
  local r, err = self.client:member_get { id = ident.value }
  if not r then return nil, err end
  local m, merr = shape.object(r, r.body.member, "member")
  if merr then return nil, merr end
  local points
  points, err = shape.number(r, m and m.points, "member.points")
  if err then return nil, err end
  self.point_value = tonumber(r.body.point_value)
  return { id = m and m.id, firstname = m and m.name, points = points or 0, custom_fields = {}, extended_fields = {} }
end

--- The CRM's value of a point: its member reply says it.
function Backend:point_rate(ident)
  if not self.point_value then
    local c, err = self:lookup(ident)
    if not c then return nil, err end
  end
  if not self.point_value then return nil, errors.new { kind = "decode", message = "no point_value in the reply" } end
  return self.point_value, "members/get"
end

function Backend:check_redeemable(ident, points)
  local c, err = self:lookup(ident)
  if not c then return nil, err end
  return { redeemable = points <= c.points, value = points * (self.point_value or 0), rate = self.point_value }
end

function Backend:redeem(ident, opts)
  local r, err = self.client:redemption_create { member = ident.value, points = opts.points,
                                                 reference = opts.reference }
  if not r then return nil, err end
  local red = r.body.redemption
  return { redemption_id = red.id, points = red.points, value = red.value, balance = red.balance }
end

function Backend:post_order(ident, _, order, opts)
  local client = opts and opts.till and opts.till.client or self.client
  local r, err = client:order_create { member = ident.value, order_id = order.id, total = order.total }
  if not r then return nil, err end
  if r.duplicate then return { duplicate = true, request_id = r.request_id } end
  local o = r.body.order
  return { points_earned = o.points_earned, balance = o.balance, transaction_id = o.id, request_id = r.request_id }
end

function Backend:reverse_redemption(_, redemption_id, points)
  local r, err = self.client:redemption_reverse { id = redemption_id }
  if not r then return nil, err end
  return { points_reversed = r.body.reversal.points or points }
end

--- A held redemption given back: reversed, unless it is reversed already.
function Backend:cancel_redemption(_, p)
  local r, err = self:reverse_redemption(nil, p.redemption_id, p.points)
  if r then return r end
  if _M.already_reversed(err) then return { already = true, points_reversed = 0 } end
  return nil, err
end

function Backend.post_return() return not_carried("order_returned") end
function Backend.register() return not_carried("register") end
function Backend.subscribe() return not_carried("subscribe") end
function Backend.send_otp() return not_carried("send_otp") end

return _M

-- Redemption holds. A redemption pays for one order, and until that order is placed the points
-- are only held: quote -> hold (redeem) -> placed (order_placed) | cancelled (cancel_redemption)
-- | expired (redemption_hold_s passed without the order: the points are given back).
-- With an outbox the hold is an entry of kind redemption_hold in its own lane ("hold:" + the
-- customer, so it never blocks the customer's orders), due at its expiry: the drainer then asks
-- the CRM whether the bill exists and reverses the redemption only when it does not. Placing the
-- order settles the entry; a cancel makes it due now when the CRM cannot be reached. Without an
-- outbox holds live in this process only (program:expire_holds() gives back the expired ones).
-- A redeem whose reply was lost (timeout, dropped connection, unreadable reply) may have been
-- booked: its hold is of unknown outcome (payload.unknown, no redemption id) and carries what
-- replays the redeem (payload.replay: points, the idempotency reference, bill number). Cancel and
-- expiry resolve it first (the backend's cancel_redemption replays or looks it up) and reverse
-- exactly what was booked, or nothing.
local errors = require "loyalty.errors"

local _M = {}

local Holds = {}
Holds.__index = Holds

function _M.new(program)
  return setmetatable({ program = program, mem = {} }, Holds)
end

local function key_of(order_id) return "hold:" .. tostring(order_id) end

--- The reversal payload of a hold (v2 points/reverse body plus what the drainer checks first).
local function payload(ident, order_id, r)
  if r.unknown then
    return { bill_number = tostring(order_id), customer = { [ident.key] = ident.value }, unknown = true,
             points = tonumber(r.points),
             replay = { points = tonumber(r.points), reference = r.reference, bill_number = tostring(order_id),
                        skip_otp = r.skip_otp == true or nil, program_id = r.program_id } }
  end
  -- What the storefront's cancel_redemption needs to give it back (its reversal request is its own).
  return {
    bill_number = tostring(order_id), customer = { [ident.key] = ident.value },
    redemption_id = r.redemption_id, points = tonumber(r.points), value = r.value,
  }
end

_M.payload = payload

--- Records the hold of redemption r (from backend:redeem) on order_id. -> {expires_at} | nil, err
function Holds:hold(ident, order_id, r)
  local p = self.program
  local expires_at = p.clock() + p.settings.redemption_hold_s
  local body = payload(ident, order_id, r)
  if p.outbox then
    local id, err = p.outbox:put { kind = "redemption_hold", customer_key = "hold:" .. ident.key .. ":" .. ident.value,
                                   payload = body, dedupe_key = key_of(order_id), next_at = expires_at }
    if not id then return nil, err end
    local e = p.outbox:find(key_of(order_id))
    return { expires_at = e and e.next_at or expires_at, outbox_id = id }
  end
  local cur = self.mem[tostring(order_id)]
  if cur and cur.payload.unknown and not body.unknown and cur.state == "held" then
    cur.payload = body -- the retried redeem's reply says what the lost one booked
  end
  if cur then return cur end -- a retried redeem keeps its first hold
  local h = { ident = ident, order_id = tostring(order_id), payload = body, expires_at = expires_at, state = "held" }
  self.mem[h.order_id] = h
  return h
end

--- The hold on order_id: {state = "held"|"placed"|"cancelled"|"expired", payload, expires_at,
-- outbox_id} | nil | nil, err.
function Holds:find(order_id)
  local p = self.program
  if p.outbox then
    local e, err = p.outbox:find(key_of(order_id))
    if not e then return nil, err end
    local state = e.state == "pending" and "held" or (e.state == "delivered" and (e.last_error or "settled") or "dead")
    return { state = state, payload = e.payload, expires_at = e.next_at, outbox_id = e.id, attempts = e.attempts }
  end
  return self.mem[tostring(order_id)]
end

--- Settles a hold as `outcome` ("placed" | "cancelled"): it will not be reversed by expiry.
function Holds:settle(order_id, outcome)
  local p = self.program
  if p.outbox then
    local e, err = p.outbox:find(key_of(order_id))
    if not e then return e == nil and err == nil or nil, err end
    if e.state == "dead" then
      -- A hold whose expiry could not be resolved (a dead letter), settled by a later cancel.
      local ok, rerr = p.outbox:retry(e.id)
      if ok == nil then return nil, rerr end
      e.state = "pending"
    end
    if e.state ~= "pending" then return true end
    local ok
    ok, err = p.outbox:mark_failed(e.id, outcome, e.next_at) -- keeps the outcome in last_error
    if ok == nil then return nil, err end
    ok, err = p.outbox:mark_delivered(e.id)
    if ok == nil then return nil, err end
    return true
  end
  local h = self.mem[tostring(order_id)]
  if h then h.state = outcome end
  return true
end

--- A cancel that cannot reach the CRM now: the hold becomes due at once (the drainer reverses it).
function Holds:due_now(order_id)
  local p = self.program
  if not p.outbox then
    return nil, errors.new { kind = "config", message = "no outbox to keep the cancel in: retry later" }
  end
  local e, err = p.outbox:find(key_of(order_id))
  if not e then return nil, err or errors.new { kind = "refused", message = "no hold for this order" } end
  local ok
  ok, err = p.outbox:retry(e.id)
  if ok == nil then return nil, err end
  return { queued = true, outbox_id = e.id }
end

return _M

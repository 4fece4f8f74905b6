-- A third provider, defined here only (the worked example of docs/providers.md): the tiny CRM of
-- spec/providers/tiny/server.lua. Everything it knows (paths, header, envelope, codes) is in this
-- folder; it reaches the library by one providers.register("tiny", require "providers.tiny.provider").
local errors = require "loyalty.errors"
local shape = require "loyalty.shape"

local _M = { name = "tiny", title = "Tiny Rewards", storefront = "providers.tiny.storefront" }

function _M.base_url()
  return nil, errors.config("the tiny CRM runs where you put it: set base_url", "base_url")
end

-- The shop key goes in a header of its own: "<username>:<password>".
function _M.password_auth(username, password)
  return { header = "X-Tiny-Key", value = username .. ":" .. password, secrets = { password } }
end

_M.REQUEST_ID_HEADERS = { "x-tiny-request" }

-- Its own client option: the shop its orders are booked to (a profile, given to every operation).
_M.config = { shop = { type = "string", doc = "the shop orders are booked to" } }

function _M.profile(opts)
  if opts.shop ~= nil and not opts.shop:match("^[%w%-]+$") then
    return nil, errors.config("shop must be letters, digits and dashes", "shop")
  end
  return { shop = opts.shop or "main" }
end

_M.error_sample = {
  reply = { status = 404, body = { ok = false, error = { code = "NO_MEMBER", message = "no member" } } },
  spec = {}, code = "NO_MEMBER",
}

_M.cli = {
  credentials = "LOYALTY_USERNAME / LOYALTY_PASSWORD (the shop key's two halves)",
  options = { { flag = "--shop", key = "shop", help = "Tiny Rewards: the shop orders are booked to." } },
}

--- {ok = true, ...} -> the reply as result; {ok = false, error = {code, message}} -> a loyalty error.
function _M.interpret(reply)
  local body, status = reply.body, reply.status
  local e = type(body) == "table" and body.ok == false and type(body.error) == "table" and body.error or nil
  if status >= 300 or e then
    local kind = (status == 401 or status == 403) and "auth" or (status >= 500 and "http" or "api")
    if not e and kind == "api" then kind = "http" end
    return nil, errors.new { kind = kind, status = status, code = e and e.code, request_id = reply.request_id,
                             message = e and shape.message(e.message) or ("HTTP " .. status),
                             retryable = status >= 500 or status == 429, retry_after = reply.retry_after,
                             not_found = status == 404 or nil }
  end
  if type(body) ~= "table" then
    return nil, errors.new { kind = "decode", status = status, request_id = reply.request_id, retryable = true,
                             message = "reply has no JSON body" }
  end
  return reply
end

local function member_id(v)
  if type(v) ~= "string" or not v:match("^%w+$") then return nil end
  return v
end

local ops = {}
_M.ops = ops

function ops.member_get(_, args)
  local id = member_id(type(args) == "table" and args.id)
  if not id then return nil, errors.config("a member id (letters and digits) is required", "id") end
  return { method = "GET", path = "/members/" .. id }
end

-- An order id is unique at the tiny CRM: a replay is refused as DUPLICATE_ORDER, so a retry is safe.
function ops.order_create(profile, args)
  if type(args) ~= "table" or not member_id(args.member) or args.order_id == nil then
    return nil, errors.config("an order needs member and order_id", "order")
  end
  return { method = "POST", path = "/orders", idempotent = true, duplicate_code = "DUPLICATE_ORDER",
           json = { member = args.member, order_id = tostring(args.order_id), total = args.total,
                    shop = profile.shop } }
end

function ops.order_get(_, args)
  local id = type(args) == "table" and tostring(args.order_id or "") or ""
  if not id:match("^[%w%-_]+$") then return nil, errors.config("an order id is required", "order_id") end
  return { method = "GET", path = "/orders/" .. id }
end

-- The reference is the redemption's key: a retry answers the first redemption.
function ops.redemption_create(_, args)
  if type(args) ~= "table" or not member_id(args.member) or type(args.points) ~= "number" then
    return nil, errors.config("a redemption needs member and points", "redemption")
  end
  return { method = "POST", path = "/redemptions", idempotent = args.reference ~= nil,
           json = { member = args.member, points = args.points, reference = args.reference } }
end

function ops.redemption_reverse(_, args)
  local id = member_id(type(args) == "table" and args.id)
  if not id then return nil, errors.config("a redemption id is required", "id") end
  return { method = "POST", path = "/redemptions/" .. id .. "/reverse", json = {} }
end

local function code_is(want)
  return function(err) return err ~= nil and err.code == want end
end

-- The outbox replay policy: an order is already delivered when the CRM has its id.
_M.replay = {
  kinds = {
    transaction_add = {
      request = function(o, p, profile) return o.order_create(profile, p) end,
      already = code_is("DUPLICATE_ORDER"),
      lookup = function(client, p)
        local r, err = client:order_get { order_id = p.order_id }
        if r then return true end
        if err.not_found then return false end
        return nil, err
      end,
    },
    points_reverse = {
      request = function(o, p) return o.redemption_reverse(nil, p) end,
      already = code_is("ALREADY_REVERSED"),
    },
  },
}

return _M

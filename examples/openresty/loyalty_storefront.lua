-- Storefront handlers for OpenResty: each location calls one function here, which calls the
-- storefront program (loyalty.program). Copy and adapt: replace `current_user` with your session
-- lookup and `DEMO_USERS` with your user store.
local loyalty_ngx = require "loyalty.ngx"
local program_config = require "loyalty.program.config"
local cjson = require "cjson.safe"

local _M = {}

-- The demo's "logged-in user": X-Demo-User header or ?user=, naming one of the sandbox's seeded
-- shoppers. A real store reads its session cookie instead.
local DEMO_USERS = {
  tom = { id = "u-tom", mobile = "919999000001", email = "tom@example.com", firstname = "Tom", lastname = "Sawyer" },
  rita = { id = "u-rita", mobile = "917713643123", email = "rita.john@example.com", firstname = "Rita",
           lastname = "James" },
  huck = { id = "u-huck", mobile = "919999000003", email = "huck@example.com", firstname = "Huck",
           lastname = "Finn" },
}
_M.DEMO_USERS = DEMO_USERS

-- The checkout root (this file is <root>/examples/openresty/loyalty_storefront.lua).
local function tree_root()
  local root = os.getenv("LOYALTY_ROOT")
  if root and root ~= "" then return root end
  local here = debug.getinfo(1, "S").source:match("^@(.*)/examples/openresty/[^/]*$")
  return here or "."
end

local settings_cache
local init_opts = {}

--- From init_by_lua*: init{transport = "socket"|"proxy"|"thread", crm_upstream = "<upstream{} name>"}.
-- crm_upstream is the keep-alive upstream that carries calls to the store's CRM base_url.
function _M.init(opts)
  init_opts = opts or {}
  loyalty_ngx.configure {
    transport = init_opts.transport or "socket",
    -- per-worker counters for the /metrics location (when nginx.conf declares the dict)
    metrics_dict = ngx.shared.loyalty_metrics and "loyalty_metrics" or nil,
  }
  -- Load the modules before the fork: the workers share the code (loyalty.rules.files loads
  -- LuaFileSystem without leaving its global behind).
  require "loyalty.program"
  require "loyalty.rules"
end

-- The store's settings (examples/store.conf.lua or $LOYALTY_STORE_CONF), made nginx-ready:
-- OAuth credentials from the environment use the cross-worker token store, and a relative rules
-- directory is taken from the checkout root. Loaded once per worker.
local settings_failure -- {err, retry_at}: a broken settings file is read again after a second

local function settings()
  if settings_cache then return settings_cache end
  if settings_failure and ngx.now() < settings_failure.retry_at then return nil, settings_failure.err end
  local path = os.getenv("LOYALTY_STORE_CONF")
  if not path or path == "" then path = tree_root() .. "/examples/store.conf.lua" end
  local s, err = program_config.load(path)
  if not s then
    if not (settings_failure and tostring(settings_failure.err) == tostring(err)) then
      ngx.log(ngx.ERR, "loyalty: store settings ", path, ": ", tostring(err)) -- once per distinct reason
    end
    settings_failure = { err = err, retry_at = ngx.now() + 1 }
    return nil, err
  end
  settings_failure = nil
  local crm = {}
  for k, v in pairs(s.crm) do crm[k] = v end
  local key = os.getenv("LOYALTY_CLIENT_KEY")
  if key and key ~= "" then
    crm.client_key, crm.client_secret = key, os.getenv("LOYALTY_CLIENT_SECRET")
    crm.username, crm.password = nil, nil
  end
  if crm.client_key then
    local store, serr = loyalty_ngx.token_store()
    if not store then return nil, { kind = "config", message = serr } end
    crm.token_store = store
  end
  s.crm = crm
  if init_opts.crm_upstream and crm.base_url then
    loyalty_ngx.configure { proxy_upstreams = { [crm.base_url] = init_opts.crm_upstream } }
  end
  if s.rules and s.rules:sub(1, 1) ~= "/" then s.rules = tree_root() .. "/" .. s.rules end
  if s.rules_last_good and s.rules_last_good:sub(1, 1) ~= "/" then
    s.rules_last_good = tree_root() .. "/" .. s.rules_last_good
  end
  settings_cache = s
  return s
end

local function program()
  local s, err = settings()
  if not s then return nil, err end
  return loyalty_ngx.program(s)
end

--- From init_worker_by_lua*: init_worker{dict = "loyalty_locks", interval = seconds}. When the
-- store's settings have an `outbox`, this worker runs the drainer (loyalty.ngx.outbox_timer) on
-- the same per-worker program as the handlers; the shared-dict lock lets one worker drain at a
-- time. The interval defaults to $LOYALTY_OUTBOX_INTERVAL, else 5 s. Without an outbox: nothing.
function _M.init_worker(opts)
  opts = opts or {}
  local s, err = settings()
  if not s then
    ngx.log(ngx.ERR, "loyalty: store settings: ", tostring(err))
    return
  end
  if not s.outbox then return end
  local interval = opts.interval
  if not interval then
    local from_env = os.getenv("LOYALTY_OUTBOX_INTERVAL")
    interval = tonumber(from_env)
    if from_env and from_env ~= "" and not (interval and interval > 0) then
      ngx.log(ngx.WARN, "loyalty: LOYALTY_OUTBOX_INTERVAL is not a positive number of seconds; using 5")
    end
    if not (interval and interval > 0) then interval = 5 end
  end
  local ok, terr = require("loyalty.ngx.outbox_timer").start {
    -- Called in the timer, where cosockets work; init_worker cannot make CRM calls.
    program = program, dict = opts.dict or "loyalty_locks", interval = interval,
    on_drain = function(t)
      if t.claimed > 0 then
        ngx.log(ngx.NOTICE, "loyalty: outbox drained: ", t.delivered, " delivered, ", t.failed, " failed, ",
                t.dead, " dead")
      end
    end,
  }
  if not ok then
    ngx.log(ngx.ERR, "loyalty: ", terr)
    return
  end
  ngx.log(ngx.NOTICE, "loyalty: outbox drainer started (", s.outbox.backend or "sqlite", ", every ", interval,
          " s)")
end

-- What a shopper's browser is told when a call fails: a stable code and a plain message per
-- class of failure, never the internal message (that goes to the error log). Refusals (422)
-- are answers for the shopper (too few points, a wrong OTP) and keep their message.
local PUBLIC = {
  timeout = { 504, "crm_timeout", "The rewards service is taking too long. Please try again." },
  network = { 502, "crm_unavailable", "The rewards service is unavailable right now. Please try again later." },
  rate_limited = { 503, "crm_busy", "The rewards service is busy. Please try again in a moment." },
  unavailable = { 503, "loyalty_unavailable", "Rewards are unavailable right now. Please try again later." },
}
for _, kind in ipairs { "tls", "http", "decode", "auth" } do PUBLIC[kind] = PUBLIC.network end
_M.PUBLIC = PUBLIC

-- A JSON-safe copy: the C core's null (userdata) becomes JSON null, functions are dropped.
local function plain(v, depth)
  local t = type(v)
  if t == "table" then
    if depth > 20 then return cjson.null end
    local out = {}
    for k, x in pairs(v) do
      if type(k) == "string" or type(k) == "number" then out[k] = plain(x, depth + 1) end
    end
    return out
  elseif t == "userdata" then
    return cjson.null
  elseif t == "function" or t == "thread" then
    return nil
  end
  return v
end

local function send_json(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  ngx.say(cjson.encode(plain(value, 0)) or '{"error":{"code":"loyalty_unavailable"}}')
  return ngx.exit(status)
end

--- The public error for err: status, {kind, code, message, request_id}. Exposed for tests.
function _M.public_error(err)
  if type(err) ~= "table" then err = { kind = "config", message = tostring(err) } end
  if err.kind == "refused" or err.kind == "api" then
    return 422, { kind = err.kind, code = err.kind == "api" and "crm_refused" or "refused", message = err.message,
                  crm_code = err.code, request_id = err.request_id }
  end
  local p = PUBLIC[err.kind] or PUBLIC.unavailable
  return p[1], { kind = "unavailable", code = p[2], message = p[3], request_id = err.request_id }
end

-- Errors reach the shopper's browser: a stable code and message (public_error); the details
-- (already scrubbed of secrets by the client) go to the error log.
local function fail(err, logged)
  local status, public = _M.public_error(err)
  if status >= 500 and not logged then ngx.log(ngx.ERR, "loyalty: ", tostring(err)) end
  return send_json(status, { error = public })
end

local function read_json()
  local body = loyalty_ngx.request_body()
  if not body or body == "" then return {} end
  local v = cjson.decode(body)
  if type(v) ~= "table" then return nil end
  return v
end

local function current_user(body)
  local name = ngx.var.http_x_demo_user or ngx.var.arg_user or (body and body.user)
  return name and DEMO_USERS[name]
end

local function with_program_and_user(need_body, fn)
  local body
  if need_body then
    body = read_json()
    if not body then return send_json(400, { error = { kind = "request", message = "JSON object body expected" } }) end
  end
  local user = current_user(body)
  if not user then return send_json(401, { error = { kind = "login", message = "not logged in" } }) end
  local p, err = program()
  if not p then return fail(err, true) end -- settings() / loyalty.ngx.program logged the reason once
  return fn(p, user, body or {})
end

local function reply(result, err)
  if not result then return fail(err) end
  return send_json(200, result)
end

--- GET: the points summary widget's data.
function _M.summary()
  return with_program_and_user(false, function(p, user)
    return reply(p:summary(user))
  end)
end

local function escape_html(s)
  return (tostring(s):gsub("[&<>\"']", {
    ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;",
  }))
end

local function group_thousands(n)
  local s = tostring(math.floor(n))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

local NEUTRAL_HTML = '<span class="loyalty-points loyalty-unavailable">Points unavailable</span>'

--- GET: the HTML fragment for the logged-in header (an SSI or an AJAX include). It always
-- renders: when the program, the rules or the CRM fail it shows neutral text (details: error log).
function _M.header_fragment()
  ngx.header["Content-Type"] = "text/html; charset=utf-8"
  ngx.header["Cache-Control"] = "no-store"
  local user = current_user(nil)
  if not user then
    ngx.say('<a class="loyalty-points loyalty-login" href="/login">Sign in for rewards</a>')
    return
  end
  local p, perr = program()
  local s, err
  if p then s, err = p:summary(user) else err = perr end
  do
    if not s then
      -- a missing program was logged once where it failed; a failed call is logged here
      if p then ngx.log(ngx.WARN, "loyalty: header widget: ", tostring(err)) end
      ngx.say(NEUTRAL_HTML)
      return
    end
    if not s.enrolled then
      ngx.say('<a class="loyalty-points loyalty-join" href="/loyalty/join">Join our rewards</a>')
      return
    end
    local value = ""
    if s.value then
      value = ' <span class="loyalty-value">(worth ' .. escape_html(s.value) ..
              (s.currency and (" " .. escape_html(s.currency)) or "") .. ")</span>"
    end
    local tier = s.tier and (' <span class="loyalty-tier">' .. escape_html(s.tier) .. "</span>") or ""
    ngx.say('<span class="loyalty-points">Hi ', escape_html(user.firstname), ": ",
            group_thousands(s.points or 0), " points", value, tier, "</span>")
  end
end

--- POST {cart, points?}: how many points this cart can take and what they are worth.
function _M.quote()
  return with_program_and_user(true, function(p, user, body)
    if type(body.cart) ~= "table" then
      return send_json(400, { error = { kind = "request", message = "cart expected" } })
    end
    return reply(p:quote_redemption(user, body.cart, tonumber(body.points)))
  end)
end

--- POST {points}: sends the redemption OTP.
function _M.otp()
  return with_program_and_user(true, function(p, user, body)
    local points = tonumber(body.points)
    if not points then return send_json(400, { error = { kind = "request", message = "points expected" } }) end
    return reply(p:send_otp(user, points))
  end)
end

--- POST {points, otp, order_id, cart}: redeems the points on an order (a hold until the order is
-- placed, cancelled by /hooks/checkout-abandoned, or expired after redemption_hold_s).
function _M.redeem()
  return with_program_and_user(true, function(p, user, body)
    local points = tonumber(body.points)
    if not points or body.order_id == nil then
      return send_json(400, { error = { kind = "request", message = "points and order_id expected" } })
    end
    return reply(p:redeem(user, { points = points, otp = body.otp and tostring(body.otp), order_id = body.order_id,
                                  cart = body.cart }))
  end)
end

--- POST {user, order}: the shop's order-placed hook; the order earns points.
function _M.order_placed()
  return with_program_and_user(true, function(p, user, body)
    local order = body.order
    if type(order) ~= "table" or order.id == nil or type(order.lines) ~= "table" then
      return send_json(400, { error = { kind = "request", message = "order with id and lines expected" } })
    end
    return reply(p:order_placed(user, order))
  end)
end

--- POST {user, order_id, redemption?}: the shop's checkout-abandoned hook (payment failed, the
-- shopper left): the points redeemed for that order come back (cancel_redemption; queued if the
-- CRM is down). Without a shared outbox the hold lives in the worker that redeemed: the shop may
-- pass the redeem reply it kept ({redemption_id, points}) so that any worker can cancel.
function _M.checkout_abandoned()
  return with_program_and_user(true, function(p, user, body)
    if body.order_id == nil then
      return send_json(400, { error = { kind = "request", message = "order_id expected" } })
    end
    local known = type(body.redemption) == "table" and body.redemption or nil
    return reply(p:cancel_redemption(user, body.order_id, known))
  end)
end

--- POST {user, order, lines? | amount?}: the shop's return hook (no lines: the whole order).
function _M.order_returned()
  return with_program_and_user(true, function(p, user, body)
    local order = body.order
    if type(order) ~= "table" or order.id == nil then
      return send_json(400, { error = { kind = "request", message = "order with id expected" } })
    end
    local ret
    if type(body.lines) == "table" then ret = { lines = body.lines }
    elseif tonumber(body.amount) then ret = { amount = tonumber(body.amount) } end
    return reply(p:order_returned(user, order, ret))
  end)
end

--- GET: Prometheus text for this nginx (every worker's counters, and the outbox's backlog).
function _M.metrics()
  local m, err = loyalty_ngx.metrics()
  if not m then
    ngx.status = 404
    ngx.say(err.message)
    return
  end
  local p = program()
  return m:serve(p and p.outbox)
end

-- Every handler is guarded: a Lua error anywhere below (a bug, a broken setting) is logged with
-- its traceback and the shopper gets the stable "loyalty_unavailable" answer (or the neutral
-- header text), never nginx's 500 page.
for _, name in ipairs { "summary", "header_fragment", "quote", "otp", "redeem", "order_placed", "order_returned" } do
  local handler = _M[name]
  _M[name] = function()
    local ok, err = xpcall(handler, debug.traceback)
    if ok then return end
    ngx.log(ngx.ERR, "loyalty: ", name, ": ", tostring(err))
    if ngx.headers_sent then return end
    if name == "header_fragment" then
      ngx.header["Content-Type"] = "text/html; charset=utf-8"
      ngx.say(NEUTRAL_HTML)
      return
    end
    local status, public = _M.public_error { kind = "config" }
    return send_json(status, { error = public })
  end
end

return _M

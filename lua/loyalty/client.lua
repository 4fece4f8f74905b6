-- A client for one CRM account: auth, retries, typed errors. Providers know the endpoints,
-- loyalty.core builds requests and decodes replies, a transport moves the bytes.
local core = require "loyalty.core"
local errors = require "loyalty.errors"
local transports = require "loyalty.transport"
local token_store = require "loyalty.token_store"
local log = require "loyalty.log"
local env = require "loyalty.env"
local timeouts = require "loyalty.timeouts"
local util = require "loyalty.util"
local providers = require "loyalty.providers"
local schema = require "loyalty.schema"

local type = type -- an upvalue: the per-call checks skip a global lookup on Lua 5.4
local floor = math.floor
local as_error = transports.as_error

local _M = {}

_M.VERSION = "0.1.0"
local USER_AGENT = "lua-loyalty/" .. _M.VERSION

local Client = {}
Client.__index = Client

-- The options every client takes (loyalty.schema form); a provider adds its own (its `config`).
local OPTIONS = {
  provider = "string", base_url = "string", environment = "string", cluster = "string",
  username = "string", password = "string", client_key = "string", client_secret = "string",
  token_header = "string", token_skew = "number", attribution = "table",
  timeout_ms = "number", connect_timeout_ms = "number", max_attempts = "number",
  backoff_base_ms = "number", backoff_max_ms = "number", retry_after_max_ms = "number",
  sleep = "function", random = "function", clock = "function", transport = "table", token_store = "table",
  ca_file = "string", ca_path = "string", insecure = "boolean", proxy = "string", user_agent = "string",
  log = "function", -- log(level, event, fields): loyalty.log
  now = "function", -- monotonic seconds for deadlines (default core.now)
}

local DEFAULT_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS = timeouts.request_ms, timeouts.connect_ms
-- A retry is only started when at least this long (or as long as the last attempt took) is
-- left before the deadline, after its backoff.
local MIN_ATTEMPT_S = 0.01
-- Replies are decoded with their whole text kept for err.raw: errors.scrub removes the secrets,
-- then cuts it to errors.RAW_CAP (a cut first could leave part of a secret behind).
local RAW_UNCUT = 64 * 1024 * 1024

-- Part of a token cache key: a secret's digest (salted, so it is not the Basic header's md5).
local function secret_hash(secret)
  return core.md5_hex("lua-loyalty token key\0" .. secret)
end

local in_nginx = env.in_nginx
local default_sleep = env.sleep

local function default_transport(opts)
  if in_nginx then return require("loyalty.ngx.transport").new(opts) end
  return require("loyalty.transport.curl").new(opts)
end

-- The fields a client's options are checked with: the generic ones and every provider's own
-- (an option of another provider is then a config error naming its owner, not a raise).
local function all_option_fields()
  local fields = {}
  for k, f in pairs(OPTIONS) do fields[k] = f end
  for _, p in ipairs(providers.all()) do
    for k, f in pairs(p.config) do fields[k] = fields[k] or f end
  end
  return fields
end

--- The option fields of a client of `provider` (a provider table): the generic ones and its config.
function _M.option_fields(provider)
  return schema.merge(OPTIONS, provider.config)
end

--- The first option in opts that `provider` does not take but another provider does: key, owner.
function _M.foreign_option(opts, provider)
  local owners = providers.option_owners()
  for k in pairs(opts) do
    if OPTIONS[k] == nil and provider.config[k] == nil and owners[k] then return k, owners[k] end
  end
end

local classes = setmetatable({}, { __mode = "k" }) -- per provider table: a provider registered again gets its own
-- The per-call steps (call, with_retries, send, header_lines, judge) call each other as locals: on
-- Lua 5.4 a method call through the class costs about what a small step does. They stay methods.
local call -- request without its argument checks, for the operations' own specs

-- One method per provider operation: client:customer_get{...} etc. Batch operations
-- (provider.batch_ops) plan several requests, run them with request_many and combine the results.
local function class_for(provider)
  local cls = classes[provider]
  if cls then return cls end
  cls = { __close = Client.close, __gc = Client.close }
  -- Client's methods copied in: one table lookup per method call instead of a metatable chain.
  for name, method in pairs(Client) do cls[name] = method end
  -- A provider with a profile (say, the release the account runs) gets it as its operations' first argument.
  local profiled = provider.profile ~= nil
  for name, op in pairs(provider.ops) do
    cls[name] = profiled and function(self, ...)
      local spec, err = op(self.profile, ...)
      if not spec then return nil, err end
      return call(self, spec)
    end or function(self, ...)
      local spec, err = op(...)
      if not spec then return nil, err end
      return call(self, spec)
    end
  end
  for name, op in pairs(provider.batch_ops or {}) do
    cls[name] = function(self, ...)
      local plan, err
      if profiled then plan, err = op(self.profile, ...) else plan, err = op(...) end
      if not plan then return nil, err end
      return plan.combine(self:request_many(plan.specs, plan.max_in_flight))
    end
  end
  setmetatable(cls, { __index = Client })
  cls.__index = cls
  classes[provider] = cls
  return cls
end

--- Creates a client. Returns client or nil, err (kind "config") for missing or inconsistent
-- settings; raises for unknown options or wrong types (programmer errors).
function _M.new(opts)
  if type(opts) ~= "table" then error("loyalty.client: options table expected", 2) end
  schema.assert(all_option_fields(), opts, "loyalty.client", 2)
  local pname = opts.provider or providers.DEFAULT
  local provider, gerr = providers.get(pname)
  if not provider then return nil, gerr end
  local foreign, owner = _M.foreign_option(opts, provider)
  if foreign then
    return nil, errors.config("option '" .. foreign .. "' belongs to the " .. owner .. " provider, not " .. pname,
                              foreign)
  end

  local base_url = opts.base_url
  if not base_url then
    local err
    base_url, err = provider.base_url(opts.environment, opts.cluster)
    if not base_url then return nil, err end
  end
  if not base_url:match("^https?://[^/]") then
    return nil, errors.config("base_url must start with http:// or https://", "base_url")
  end
  base_url = base_url:gsub("/+$", "")

  local self = {
    provider = provider, base_url = base_url, secrets = {}, static_secrets = {}, token_secrets = {},
    timeout = (opts.timeout_ms or DEFAULT_TIMEOUT_MS) / 1000,
    connect_timeout_ms = opts.connect_timeout_ms or DEFAULT_CONNECT_TIMEOUT_MS,
    now = opts.now or core.now,
    max_attempts = opts.max_attempts or 3,
    backoff_base = (opts.backoff_base_ms or 200) / 1000,
    backoff_max = (opts.backoff_max_ms or 5000) / 1000,
    retry_after_max = (opts.retry_after_max_ms or 30000) / 1000,
    sleep = opts.sleep or default_sleep,
    random = opts.random or math.random,
    clock = opts.clock or os.time,
    token_skew = opts.token_skew or 30,
    user_agent = opts.user_agent and (opts.user_agent .. " " .. USER_AGENT) or USER_AGENT,
    log = opts.log or log.default(),
  }

  if provider.profile then
    local perr
    self.profile, perr = provider.profile(opts)
    if not self.profile then return nil, perr end
  end

  if provider.login then
    -- The provider owns its login (a token from a login call, sent where apply_token puts it).
    local login, lerr = provider.login(opts)
    if not login then return nil, lerr end
    self.login_spec = login.spec
    for _, s in ipairs(login.secrets) do self.static_secrets[#self.static_secrets + 1] = s end
    self.token_store = opts.token_store or token_store.default()
    -- The cache key names the whole credential: another password is another token.
    self.token_key = base_url .. "|" .. login.key .. "|" .. secret_hash(opts.password or opts.api_key or "")
  elseif opts.username or opts.password then
    if not (opts.username and opts.password) then
      return nil, errors.config("Basic auth needs both username and password",
                                opts.username and "password" or "username")
    end
    if not provider.password_auth then
      return nil, errors.config("the " .. pname .. " provider takes no username/password", "username")
    end
    -- The provider's shape of a password header (and the secrets derived from it, scrubbed too).
    local auth = provider.password_auth(opts.username, opts.password)
    self.auth_header = auth.value
    self.auth_value = { auth.header or "Authorization", auth.value }
    local secrets = self.static_secrets
    for _, secret in ipairs(auth.secrets) do secrets[#secrets + 1] = secret end
  elseif opts.client_key or opts.client_secret then
    if not (opts.client_key and opts.client_secret) then
      return nil, errors.config("OAuth needs both client_key and client_secret",
                                opts.client_key and "client_secret" or "client_key")
    end
    self.client_key, self.client_secret = opts.client_key, opts.client_secret
    self.static_secrets[#self.static_secrets + 1] = opts.client_secret
    self.token_header = opts.token_header or provider.TOKEN_HEADER
    self.token_store = opts.token_store or token_store.default()
    -- Key, a hash of the secret and the base URL: a wrong secret never finds a good client's token.
    self.token_key = base_url .. "|" .. opts.client_key .. "|" .. secret_hash(opts.client_secret)
  else
    return nil, errors.config("credentials missing: username/password or client_key/client_secret", "username")
  end

  for _, k in ipairs { "timeout_ms", "connect_timeout_ms" } do
    local v = opts[k]
    if v ~= nil and (v ~= v or v < 1 or v > 86400000) then
      return nil, errors.config(k .. " must be from 1 to 86400000 milliseconds", k)
    end
  end
  if provider.attribution_headers then
    self.attribution = provider.attribution_headers(opts.attribution)
  end
  -- The provider's request-id headers, for a transport that reads replies in C.
  local transport = opts.transport
                    or default_transport(schema.merge(opts, { request_id_headers = provider.REQUEST_ID_HEADERS }))
  self.transport = transport
  -- The built-in transports, and one that builds its own requests (exchange), never modify a
  -- request: they share the client's header lines between calls.
  if not opts.transport or transport.exchange then self.header_cache, self.build_args = {}, {} end
  -- send's one-call path, where the transport offers one (libcurl: build, perform, decode in C):
  -- its exchange function, which send calls without a lookup through the transport's class.
  self.one_call = self.header_cache and transport.exchange or nil
  local client = setmetatable(self, class_for(provider))
  client:refresh_secrets()
  return client
end

-- The scrub list: the configured secrets and the current (and previous) token, longest first so
-- that a secret holding another is replaced whole. Bounded: a new token replaces the oldest.
function Client:refresh_secrets()
  local list = {}
  for _, s in ipairs(self.static_secrets) do list[#list + 1] = s end
  for _, s in pairs(self.token_secrets) do list[#list + 1] = s end
  local min, kept = errors.MIN_SECRET, {}
  for _, s in ipairs(list) do
    if type(s) == "string" and #s >= min then kept[#kept + 1] = s end
  end
  table.sort(kept, function(a, b) return #a > #b end)
  -- In place: views (client:with_timeout) and log hooks share this table.
  local secrets = self.secrets
  for i = #secrets, 1, -1 do secrets[i] = nil end
  for i, s in ipairs(kept) do secrets[i] = s end
end

-- A token now in use: scrubbed from then on, with the one before it (calls may still carry it).
function Client:note_token(token)
  local t = self.token_secrets
  if t.current == token then return end
  t.previous, t.current = t.current, token
  self:refresh_secrets()
end

--- A view of the client whose calls have their own deadline (whole milliseconds, >= 1): the
-- program gives shopper-facing reads a shorter one. Shares the client's connection and tokens.
function Client:with_timeout(timeout_ms)
  if type(timeout_ms) ~= "number" or timeout_ms ~= timeout_ms or timeout_ms < 1 then
    error("loyalty.client: with_timeout needs a number of milliseconds >= 1", 2)
  end
  return setmetatable({ timeout = timeout_ms / 1000, close = function() end }, { __index = self })
end

--- Sends a structured event to the client's log sink (secrets scrubbed).
function Client:emit(level, event, fields)
  if self.log then log.emit(self.log, level, event, fields, self.secrets) end
end

function Client:close()
  local t = self.transport
  if t and t.close and not self.closed then
    self.closed = true
    t:close()
  end
end

-- Full-jitter exponential backoff; a server's Retry-After wins when longer (capped).
function Client:backoff(attempt, retry_after)
  return util.backoff(attempt, self.backoff_base, self.backoff_max, self.random, retry_after, self.retry_after_max)
end

local function build_error(err)
  return errors.new { kind = "config", message = err.message or tostring(err) }
end

-- The client's own headers (user agent, auth, attribution) as a name -> value table.
function Client:base_headers(auth_value)
  local headers = { ["User-Agent"] = self.user_agent, Accept = "application/json" }
  -- A provider may require Content-Type on every call, GETs too (provider.CONTENT_TYPE_ALWAYS).
  if self.provider.CONTENT_TYPE_ALWAYS then headers["Content-Type"] = "application/json" end
  if auth_value then headers[auth_value[1]] = auth_value[2] end
  if self.attribution then
    for k, v in pairs(self.attribution) do headers[k] = v end
  end
  return headers
end

-- The "Name: value" lines of base_headers, built once per auth value and body kind: they are
-- the same for every call without per-call headers. Only the built-in transports share them,
-- as they never modify a request.
local function header_lines(self, auth_value, with_json)
  local name, value = auth_value and auth_value[1], auth_value and auth_value[2]
  local cached = self.header_cache[with_json]
  if cached and cached[1] == name and cached[2] == value then return cached[3] end
  local req, err = core.build_request { base_url = self.base_url, headers = self:base_headers(auth_value),
                                        json = with_json and core.empty_array or nil }
  if not req then return nil, err end
  self.header_cache[with_json] = { name, value, req.headers }
  return req.headers
end
Client.header_lines = header_lines

-- spec -> core request table (headers, attribution, auth header) or nil, err.
function Client:build(spec, auth_value)
  if self.header_cache and not spec.attribution and not spec.headers then
    local lines, lerr = header_lines(self, auth_value, spec.json ~= nil)
    if not lines then return nil, build_error(lerr) end
    -- One argument table per client, refilled whole: build_request only reads it.
    local args = self.build_args
    args.method, args.base_url, args.path, args.query = spec.method, self.base_url, spec.path, spec.query
    args.json, args.body = spec.json, spec.body
    local req, err = core.build_request(args)
    args.query, args.json, args.body = nil, nil, nil -- hold no caller data between calls
    if not req then return nil, build_error(err) end
    req.headers = lines
    return req
  end
  local headers = self:base_headers(auth_value)
  if spec.attribution then
    for k, v in pairs(self.provider.attribution_headers(spec.attribution)) do headers[k] = v end
  end
  if spec.headers then
    for k, v in pairs(spec.headers) do headers[k] = v end
  end
  local req, err = core.build_request {
    method = spec.method, base_url = self.base_url, path = spec.path, query = spec.query,
    headers = headers, json = spec.json, body = spec.body,
  }
  if not req then return nil, build_error(err) end
  return req
end

local function decode_error(derr)
  return errors.new { kind = "decode", status = derr.status, message = derr.message, raw = derr.raw,
                      request_id = derr.request_id, retryable = true }
end

-- The provider's reading of a reply; a pick returns an error when a field has the wrong type.
local function read_reply(provider, reply, spec)
  local result, aerr = provider.interpret(reply, spec)
  if not result then return nil, aerr end
  local pick = spec.pick
  if pick then
    local perr = pick(result)
    if perr then return nil, perr end
  end
  return result
end

-- A decoded reply -> result | nil, err; a body that was not JSON (derr) is judged by its status alone
-- when the status says failure anyway (a proxy's 502 page, say).
local function judge(self, reply, derr, spec)
  if not reply then
    if derr.status < 300 then return nil, decode_error(derr) end
    reply = { status = derr.status, request_id = derr.request_id, retry_after = derr.retry_after }
  end
  local ok, result, err = pcall(read_reply, self.provider, reply, spec)
  if ok then return result, err end
  -- A reply shape no read site checked: still an answer, never a raise (err.unchecked marks it,
  -- so specs can find the read site that should have named the field).
  return nil, errors.new { kind = "decode", status = reply.status, request_id = reply.request_id,
                           retryable = true, unchecked = true,
                           message = "reply could not be read: " .. tostring(result) }
end
Client.judge = judge

-- A transport's reply -> result | nil, err.
function Client:interpret(res, spec)
  local reply, derr = core.decode_reply(res.status, res.headers, res.body, RAW_UNCUT, self.provider.REQUEST_ID_HEADERS)
  if reply then reply.headers = nil end -- a result may be the reply itself: the same fields on every path
  return judge(self, reply, derr, spec)
end

-- One round trip: spec -> request -> transport -> reply -> result | nil, err. `timeout_ms` is what
-- is left of the call's deadline (whole ms >= 1): the transport gives this attempt no longer.
local function send(self, spec, auth_value, timeout_ms)
  timeout_ms = timeout_ms or floor(self.timeout * 1000)
  local connect_ms = self.connect_timeout_ms
  if connect_ms > timeout_ms then connect_ms = timeout_ms end
  local exchange = self.one_call
  if exchange and not spec.attribution and not spec.headers then
    -- Build, send and decode in one step of the transport's (libcurl: one C call, the same C code
    -- as build_request, perform and decode_reply without their intermediate tables).
    local lines, lerr = header_lines(self, auth_value, spec.json ~= nil)
    if not lines then return nil, build_error(lerr) end
    local reply, err, stage = exchange(self.transport, spec, self.base_url, lines, RAW_UNCUT, timeout_ms, connect_ms)
    if reply then return judge(self, reply, nil, spec) end
    if stage == "reply" then return judge(self, nil, err, spec) end
    if stage == "build" then return nil, build_error(err) end
    return nil, as_error(err)
  end
  local req, err = self:build(spec, auth_value)
  if not req then return nil, err end
  req.timeout_ms, req.connect_timeout_ms = timeout_ms, connect_ms
  local res, terr = self.transport:send(req)
  if not res then return nil, as_error(terr) end
  return self:interpret(res, spec)
end
Client.send = send

-- Returns a fresh or cached OAuth token; one refresh at a time per token key. A refresh is part
-- of the call that needed it: it runs inside that call's deadline.
function Client:token(force, deadline)
  local store, key = self.token_store, self.token_key
  local now = self.clock()
  if not force then
    local tok, exp = store:get(key)
    if tok and exp > now then
      if tok ~= self.token_secrets.current then self:note_token(tok) end -- another worker's refresh
      return tok
    end
  end
  -- Waiting for another refresh counts against the deadline too (stores may take the wait bound).
  local release, lerr = store:lock(key, deadline and math.max(deadline - self.now(), 0) or nil)
  if not release then
    -- Another refresh holds the lock past what this call may wait: try again later (queueable).
    return nil, errors.new { kind = "timeout", retryable = true, message = "token lock: " .. util.message_of(lerr) }
  end
  local tok, exp = store:get(key)
  if tok and exp > now and not (force and tok == force) then
    release()
    if tok ~= self.token_secrets.current then self:note_token(tok) end
    return tok
  end
  local result, err = self:with_retries(self.login_spec or
                                        self.provider.token_request(self.client_key, self.client_secret), nil,
                                        deadline)
  if not result then
    release()
    return nil, err
  end
  local token, ttl = self.provider.token_from(result)
  if not token then
    release()
    return nil, errors.scrub(ttl, self.secrets)
  end
  if type(ttl) ~= "number" or ttl ~= ttl or ttl < 0 or ttl == math.huge then
    release()
    return nil, errors.bad_field(result, "ttl", "a finite number of seconds >= 0", ttl)
  end
  self:note_token(token)
  self:emit("info", "token_refresh", { ttl_s = ttl, forced = force ~= nil and force ~= false })
  local skew = math.min(self.token_skew, ttl / 10)
  store:set(key, token, now + ttl - skew, ttl)
  release()
  return token
end

-- The call's deadline: now + spec.timeout_ms, or the client's (or view's) timeout; and the
-- spec's timeout_ms (nil: the client's) for the error that reports it.
local function deadline_of(self, spec)
  local ms = spec.timeout_ms
  if ms == nil then return self.now() + self.timeout, nil end
  if type(ms) ~= "number" or ms ~= ms or ms < 1 then error("loyalty: spec.timeout_ms must be a number >= 1", 4) end
  return self.now() + ms / 1000, ms
end

-- The deadline stopped the call: the error of the last attempt (or a timeout when none could be
-- sent), saying so. Its kind and retryable stay the last attempt's: callers queue it as before.
local function deadline_error(err, attempts, budget_ms, self)
  if self then budget_ms = budget_ms or floor(self.timeout * 1000 + 0.5) end
  if not err then
    err = errors.new { kind = "timeout", retryable = true,
                       message = "no time left to send the request (a token refresh or earlier step used it)" }
  end
  err.deadline_reached, err.deadline_ms, err.attempts = true, budget_ms, attempts
  local seen = type(err.message) == "string" and err.message or tostring(err.kind)
  err.message = "call deadline of " .. tostring(budget_ms) .. " ms reached; the last attempt saw: " .. seen
  return err
end

-- What follows failed attempt number `attempts` of spec (started at `started`, failed at
-- `finished`): a wait in seconds before the next attempt, or false and the outcome (the result
-- of a duplicate, or nil and the error to give back). The single call and request_many both ask.
local function after_failure(self, spec, err, attempts, started, finished, deadline, budget_ms)
  if spec.duplicate_code and attempts > 1 and err.code == spec.duplicate_code then
    -- An earlier attempt of this idempotent write reached the CRM.
    return false, { status = err.status, request_id = err.request_id, duplicate = true, attempts = attempts,
                    body = {}, warnings = {}, items = {} }
  end
  if err.kind == "timeout" and finished >= deadline - 0.001 then
    return false, nil, deadline_error(err, attempts, budget_ms, self) -- the attempt had only what was left
  end
  local max = (spec.method == "GET" or spec.idempotent or spec.retry_safe)
              and self.max_attempts or 1
  if not err.retryable or attempts >= max then
    err.attempts = attempts
    return false, nil, err
  end
  local d = self:backoff(attempts, err.retry_after)
  local took = finished - started
  if took < MIN_ATTEMPT_S then took = MIN_ATTEMPT_S end
  -- A retry that cannot finish inside the deadline is not started (nor slept for).
  if finished + d + took > deadline then return false, nil, deadline_error(err, attempts, budget_ms, self) end
  self:emit("info", "retry", { attempt = attempts, kind = err.kind, status = err.status, wait_ms = d * 1000 })
  return d
end

-- The CRM refused the token (revoked, or expired early): worth one renewal and a replay.
local function token_rejected(err)
  return err.kind == "auth" and (err.status == 401 or err.token_rejected)
end

local function with_retries(self, spec, auth_value, deadline, budget_ms)
  if not deadline then deadline, budget_ms = deadline_of(self, spec) end
  local now = self.now
  local attempts, last = 0, nil
  while true do
    local started = now()
    local left = deadline - started
    if left * 1000 < 1 then return nil, deadline_error(last, attempts, budget_ms, self) end
    attempts = attempts + 1
    local result, err = send(self, spec, auth_value, floor(left * 1000))
    if result then
      result.attempts = attempts
      return result
    end
    local wait, outcome, final = after_failure(self, spec, err, attempts, started, now(), deadline, budget_ms)
    if not wait then return outcome, final end
    self.sleep(wait)
    last = err
  end
end
Client.with_retries = with_retries

-- spec, auth_value for a call with this token: a header, or where the provider puts it.
function Client:with_token(spec, token)
  if self.provider.apply_token then return self.provider.apply_token(spec, token), nil end
  return spec, { self.token_header, token }
end

local function failed(err) return { err = err } end

-- One attempt of each specs[i] for i in idx, through the transport's send_many (at most
-- max_in_flight at once) with the client's auth. Returns out[n] = result | { err = err } for idx[n].
function Client:run_round(specs, idx, token, max_in_flight, timeout_ms)
  local reqs, out, sent = {}, {}, {}
  timeout_ms = timeout_ms or floor(self.timeout * 1000)
  local connect_ms = math.min(self.connect_timeout_ms, timeout_ms)
  for n, i in ipairs(idx) do
    local spec, auth_value = specs[i], nil
    if token then spec, auth_value = self:with_token(spec, token) end
    if not token and self.auth_header then auth_value = self.auth_value end
    local req, err = self:build(spec, auth_value)
    if req then
      req.timeout_ms, req.connect_timeout_ms = timeout_ms, connect_ms
      reqs[#reqs + 1] = req
      out[n], sent[n] = #reqs, spec
    else
      out[n] = failed(err)
    end
  end
  local replies = #reqs > 0 and transports.send_many(self.transport, reqs, max_in_flight) or {}
  for n in ipairs(idx) do
    if type(out[n]) == "number" then
      local res, spec = replies[out[n]], sent[n]
      if res.err then
        out[n] = failed(res.err)
      else
        local result, err = self:interpret(res, spec)
        out[n] = result or failed(err)
      end
    end
  end
  return out
end

--- Batch call: specs (as for request) run concurrently, at most max_in_flight at once (default 4),
-- where the transport can (send_many); one after another where it cannot. Each failure is decided
-- as a single call's is (after_failure: attempts, Retry-After, duplicate_code, the deadline) and
-- retried in a later round; a token rejection renews the token once for the batch. Returns an
-- array where [i] is the result of specs[i] or { err = err }; never nil.
function Client:request_many(specs, max_in_flight)
  if type(specs) ~= "table" then error("loyalty: array of request specs expected", 2) end
  max_in_flight = max_in_flight or 4
  local now = self.now
  -- Each request has the client's timeout; the batch one per wave of requests sent together, and
  -- a retry round starts only when it can finish inside that.
  local per_wave = transports.concurrent(self.transport) and max_in_flight or 1
  local waves = math.max(1, math.ceil(#specs / per_wave))
  local budget_ms = floor(self.timeout * 1000 + 0.5)
  local batch_ms = budget_ms * waves
  local deadline = now() + self.timeout * waves
  local token, terr
  if self.client_key or self.login_spec then
    token, terr = self:token(nil, now() + self.timeout)
    if not token then
      local out = {}
      for i = 1, #specs do out[i] = failed(errors.scrub(terr, self.secrets)) end
      return out
    end
  end
  local results, pending, attempts, last, renewed = {}, {}, {}, {}, false
  for i = 1, #specs do pending[i], attempts[i] = i, 0 end
  while #pending > 0 do
    local started = now()
    local left_ms = floor((deadline - started) * 1000)
    if left_ms < 1 then
      for _, i in ipairs(pending) do
        results[i] = failed(errors.scrub(deadline_error(last[i], attempts[i], batch_ms, self), self.secrets))
      end
      break
    end
    local round = self:run_round(specs, pending, token, max_in_flight, math.min(budget_ms, left_ms))
    local finished = now()
    local again, rejected, wait = {}, false, 0
    for n, i in ipairs(pending) do
      local r = round[n]
      attempts[i] = attempts[i] + 1
      local err = r.err
      if not err then
        r.attempts = attempts[i]
        results[i] = r
      elseif token and not renewed and token_rejected(err) then
        -- As a single call does: a new token, and the attempts counted afresh with it.
        again[#again + 1], rejected, attempts[i] = i, true, 0
      else
        local w, outcome, final = after_failure(self, specs[i], err, attempts[i], started, finished, deadline,
                                                batch_ms)
        if w then
          again[#again + 1], last[i] = i, err
          if w > wait then wait = w end
        else
          results[i] = outcome or failed(errors.scrub(final, self.secrets))
        end
      end
    end
    if rejected then
      renewed = true
      token, terr = self:token(token, now() + self.timeout)
      if not token then
        for _, i in ipairs(again) do results[i] = failed(errors.scrub(terr, self.secrets)) end
        again = {}
      end
    end
    -- One sleep per round: the longest wait any retried request asked for.
    if #again > 0 and wait > 0 then self.sleep(wait) end
    pending = again
  end
  return results
end

--- Low-level call: spec {method, path, query, json|body, headers, attribution, version,
-- idempotent, duplicate_code, pick}. Returns result or nil, err.
function Client:request(spec)
  if type(spec) ~= "table" or type(spec.method) ~= "string" or type(spec.path) ~= "string" then
    error("loyalty: request spec with method and path expected", 2)
  end
  return call(self, spec)
end

-- One deadline for the whole call: token refreshes, every attempt, every backoff.
function call(self, spec)
  local deadline, budget_ms = deadline_of(self, spec)
  local result, err
  if self.auth_header then
    result, err = with_retries(self, spec, self.auth_value, deadline, budget_ms)
  elseif self.client_key or self.login_spec then
    local token
    token, err = self:token(nil, deadline)
    if token then
      local s, auth_value = self:with_token(spec, token)
      result, err = with_retries(self, s, auth_value, deadline, budget_ms)
      if not result and token_rejected(err) then
        -- The token may have been revoked or expired early: regenerate once and replay.
        token, err = self:token(token, deadline)
        if token then
          s, auth_value = self:with_token(spec, token)
          result, err = with_retries(self, s, auth_value, deadline, budget_ms)
        end
      end
    end
  end
  if not result then return nil, errors.scrub(err, self.secrets) end
  return result
end

return _M

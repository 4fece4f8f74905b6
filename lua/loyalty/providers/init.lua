--[[ The provider contract and the registry. A provider is one folder, providers/<name>/, whose
init.lua returns a table; nothing outside that folder knows its hosts, paths, headers or codes.

  name, title            registry name ("acme") and how people write it ("ACME Rewards")
  base_url(environment, cluster) -> url | nil, err
                         its hosts (the base_url option always wins)
  config                 the client options it adds, in loyalty.schema form (release, organisation, ...)
  token_request(key, secret) -> spec, TOKEN_HEADER
                         OAuth keys (client_key/client_secret): the token call, and the header a token goes in
  login(opts) -> { spec, key, secrets } | nil, err
                         or a login of its own (the token then goes where apply_token(spec, token) puts it)
  token_from(result) -> token, ttl_seconds | nil, err
                         A token or login spec carries retry_safe = true: the client retries it like a read.
  REQUEST_ID_HEADERS     lower-case reply headers naming the request id (first found wins; Retry-After is
                         read for every provider)
  ops[name](...) -> spec | nil, err
                         an operation -> a request spec { method, path, query, json | body, idempotent,
                         duplicate_code, pick }; with profile(opts) each op gets the profile first
  batch_ops[name](...) -> { specs, max_in_flight, combine(results) }
  interpret(reply, spec) -> result | nil, err
                         a decoded reply -> result, or a loyalty.errors table (kind api/auth/http/...)
  storefront             the module (or its name) loyalty.program uses: new(client, settings) -> backend with
                         lookup, point_rate, check_redeemable, redeem, post_order, post_return, register,
                         subscribe, send_otp, cancel_redemption, reverse_redemption; optional flags and
                         functions: AWARDS_MONEY, POINT_UNIT, REDEMPTION_BOOKS_ORDER, check_settings(s),
                         limit_refusal(err), already_reversed(err), preview(program, ident, cart)
  replay                 the module (or its name) of its outbox replay policy: kinds[entry kind] =
                         { request(ops, payload, profile) -> spec | nil, err, already(err) -> bool,
                           lookup(client, payload) -> true | false | nil, err (before a replay) }
  cli                    `loyalty call`: { credentials = "text", options = {{ flag, help, key, env, target }},
                         env = { option = "VAR" }, how = { option = "hint" }, raw_spec(spec, args) }
  password_auth(username, password) -> { header, value, secrets }
                         how a username/password is sent (none: the provider takes no password auth)
  error_sample           a documented error reply { reply = { status, body }, spec, code }: the contract
                         spec checks that interpret maps it to a loyalty.errors table with that code
  optional: profile(opts), apply_token(spec, token), attribution_headers(a), CONTENT_TYPE_ALWAYS
]]
local _M = {}

-- The built-in providers, loaded on first use. The default is the provider of settings and
-- clients that name none.
local BUILT_IN = { "capillary", "crmcom" }
_M.DEFAULT = BUILT_IN[1]

local registered = {}
local owners -- option key -> provider name, rebuilt after a registration

local function bad(name, what)
  error("loyalty.providers: provider '" .. tostring(name) .. "': " .. what, 4)
end

local function check_functions(name, t, field)
  if t == nil then return end
  if type(t) ~= "table" then bad(name, field .. " must be a table of functions") end
  for k, f in pairs(t) do
    if type(k) ~= "string" or type(f) ~= "function" then
      bad(name, field .. "." .. tostring(k) .. " must be a function")
    end
  end
end

local function check_module_ref(name, m, field)
  if type(m) ~= "string" and type(m) ~= "table" then bad(name, field .. " must be a module or a module name") end
end

local SCHEMA_TYPES = { string = true, number = true, boolean = true, table = true, ["function"] = true }

-- The shape of a provider table; raises (a programmer error) naming what is wrong.
local function validate(name, p)
  if type(p) ~= "table" then bad(name, "a module table expected") end
  if p.name ~= name then bad(name, "its name field must be '" .. tostring(name) .. "'") end
  if type(p.title) ~= "string" then bad(name, "title must be a string") end
  for _, f in ipairs { "base_url", "interpret" } do
    if type(p[f]) ~= "function" then bad(name, f .. " must be a function") end
  end
  if type(p.login) ~= "function" and type(p.token_request) ~= "function" and type(p.password_auth) ~= "function" then
    bad(name, "password_auth, login or token_request must be a function")
  end
  if (p.login or p.token_request) and type(p.token_from) ~= "function" then
    bad(name, "token_from must be a function (it has a login or token request)")
  end
  local sample = p.error_sample
  if type(sample) ~= "table" or type(sample.reply) ~= "table" or type(sample.reply.status) ~= "number" then
    bad(name, "error_sample must be { reply = { status, body }, spec, code } (a documented error reply)")
  end
  if type(p.ops) ~= "table" then bad(name, "ops must be a table of functions") end
  check_functions(name, p.ops, "ops")
  check_functions(name, p.batch_ops, "batch_ops")
  local ids = p.REQUEST_ID_HEADERS
  if type(ids) ~= "table" or #ids < 1 or #ids > 4 then bad(name, "REQUEST_ID_HEADERS must list 1 to 4 header names") end
  for _, h in ipairs(ids) do
    if type(h) ~= "string" or not h:match("^[a-z0-9][a-z0-9%-_]*$") or #h > 63 then
      bad(name, "REQUEST_ID_HEADERS: '" .. tostring(h) .. "' is not a lower-case header name")
    end
  end
  if type(p.config) ~= "table" then bad(name, "config must be a table of option fields (loyalty.schema form)") end
  for k, f in pairs(p.config) do
    local t = type(f) == "table" and f.type or f
    if type(k) ~= "string" or not SCHEMA_TYPES[t] then
      bad(name, "config." .. tostring(k) .. " is not a schema field")
    end
  end
  check_module_ref(name, p.storefront, "storefront")
  check_module_ref(name, p.replay, "replay")
  local cli = p.cli
  if type(cli) ~= "table" or type(cli.credentials) ~= "string" or type(cli.options) ~= "table" then
    bad(name, "cli must be { credentials = text, options = {...} }")
  end
  for i, o in ipairs(cli.options) do
    if type(o) ~= "table" or type(o.flag) ~= "string" or not o.flag:match("^%-%-[a-z][a-z0-9%-]*$")
      or type(o.help) ~= "string" or (o.key == nil and o.target == nil) then
      bad(name, "cli.options[" .. i .. "] must be { flag = \"--name\", help, key (a client option) or target }")
    end
  end
end

--- register(name, module): adds (or replaces) a provider; raises when its shape is wrong.
function _M.register(name, module)
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    error("loyalty.providers: a provider name (letters, digits, _) expected", 2)
  end
  validate(name, module)
  registered[name] = module
  owners = nil
  return module
end

--- get(name) -> provider | nil, err (kind config, key "provider").
function _M.get(name)
  local p = registered[name]
  if p then return p end
  for _, b in ipairs(BUILT_IN) do
    if b == name then
      p = require("loyalty.providers." .. name)
      validate(name, p)
      registered[name] = p
      owners = nil
      return p
    end
  end
  return nil, require("loyalty.errors").config("unknown provider '" .. tostring(name) .. "'", "provider")
end

--- names() -> the sorted names of the built-in and registered providers.
function _M.names()
  local seen, list = {}, {}
  for _, n in ipairs(BUILT_IN) do seen[n] = true end
  for n in pairs(registered) do seen[n] = true end
  for n in pairs(seen) do list[#list + 1] = n end
  table.sort(list)
  return list
end

--- Every provider, loaded: an array in names() order.
function _M.all()
  local list = {}
  for _, n in ipairs(_M.names()) do list[#list + 1] = assert(_M.get(n)) end
  return list
end

--- option key -> the name of the provider whose config declares it (every provider loaded).
function _M.option_owners()
  if owners then return owners end
  local map = {}
  for _, p in ipairs(_M.all()) do
    for k in pairs(p.config) do map[k] = map[k] or p.name end
  end
  owners = map
  return map
end

local STOREFRONT_FUNCTIONS = { "new" }
local REPLAY_FIELDS = { "kinds" }

--- A provider's part (field "storefront" or "replay"), its module loaded when named by a string.
function _M.part(p, field)
  local m = p[field]
  if type(m) == "string" then
    m = require(m)
    p[field] = m
  end
  for _, f in ipairs(field == "storefront" and STOREFRONT_FUNCTIONS or REPLAY_FIELDS) do
    if m == nil or m[f] == nil then bad(p.name, field .. " has no '" .. f .. "'") end
  end
  return m
end

--- The storefront module of the provider called `name` | nil, err.
function _M.storefront(name)
  local p, err = _M.get(name)
  if not p then return nil, err end
  return _M.part(p, "storefront")
end

return _M

-- OpenResty glue: which nginx transport carries CRM calls, the shared token store, and one
-- storefront program per worker. Call `configure` from init_by_lua*; everything else is lazy.
local env = require "loyalty.env"
local errors = require "loyalty.errors"
local schema = require "loyalty.schema"
local timeouts = require "loyalty.timeouts"

local _M = {}

local DEFAULTS = {
  -- "socket" (cosockets) measured fastest (bench/nginx.lua) and works in every cosocket phase.
  transport = "socket",
  proxy_location = "/_loyalty_proxy",
  -- origin ("https://host[:port]") -> name of an upstream{} block with keepalive
  proxy_upstreams = {},
  thread_pool = "loyalty",
  token_dict = "loyalty_tokens",
  lock_timeout = timeouts.token_lock_wait_s, -- seconds a worker waits for another worker's token refresh
  lock_ttl = timeouts.token_lock_ttl_s,       -- a crashed refresher's lock expires after this
  socket_pool_size = 64,        -- keep-alive connections per CRM origin, per worker
  socket_keepalive_ms = timeouts.keepalive_ms, -- idle time before a pooled connection is closed
  gzip = true,                  -- send Accept-Encoding: gzip (the reply is inflated by the C core)
  -- lua_shared_dict for loyalty.ngx.metrics (nil: no metrics)
  metrics_dict = nil,
}

-- configure's options (loyalty.schema fields); the defaults are DEFAULTS, kept by `settings`.
local OPTIONS = {
  transport = { type = "string", one_of = { socket = true, proxy = true, thread = true } },
  proxy_location = "string", proxy_upstreams = "table", thread_pool = "string", token_dict = "string",
  lock_timeout = { type = "number", above = 0, doc = "seconds" },
  lock_ttl = { type = "number", above = 0, doc = "seconds" },
  socket_pool_size = { type = "number", above = 0, doc = "connections per origin" },
  socket_keepalive_ms = { type = "number", above = 0, doc = "milliseconds" },
  gzip = "boolean", metrics_dict = "string",
}

local settings = {}
for k, v in pairs(DEFAULTS) do settings[k] = v end
settings.proxy_upstreams = {}

local stores = {}
local metrics -- this worker's loyalty.ngx.metrics, made on first use

--- The worker's metrics (loyalty.ngx.metrics) when configure{metrics_dict} names a declared
-- lua_shared_dict; nil, err (kind config) otherwise.
function _M.metrics()
  if metrics then return metrics end
  if not settings.metrics_dict then
    return nil, errors.config("metrics are off (configure{metrics_dict = ...})", "metrics_dict")
  end
  local m, err = require("loyalty.ngx.metrics").new(settings.metrics_dict)
  if not m then return nil, err end
  metrics = m
  return m
end

-- "https://Host:443/any/path" -> "https://host"; nil when not an http(s) URL.
local function normalise_origin(url)
  local scheme, host, port = url:lower():match("^(https?)://([^/:?#]+):?(%d*)")
  if not scheme then return nil end
  if port == "" or (scheme == "http" and port == "80") or (scheme == "https" and port == "443") then
    return scheme .. "://" .. host
  end
  return scheme .. "://" .. host .. ":" .. port
end
_M.normalise_origin = normalise_origin

--- configure{transport = "socket"|"proxy"|"thread", socket_pool_size, socket_keepalive_ms, gzip,
-- proxy_location, proxy_upstreams = {[origin] = upstream},
-- thread_pool, token_dict, lock_timeout, lock_ttl, metrics_dict}. Raises on unknown keys or bad values
-- (configuration is code in nginx.conf). Returns the effective settings.
function _M.configure(opts)
  schema.assert(OPTIONS, opts, "loyalty.ngx.configure", 2)
  for k, v in pairs(opts) do
    if k == "proxy_upstreams" then
      -- merged, so a storefront can add its CRM's upstream once it knows the base_url
      local map = settings.proxy_upstreams
      for origin, name in pairs(v) do
        local key = type(origin) == "string" and normalise_origin(origin)
        if not key or type(name) ~= "string" then
          error("loyalty.ngx.configure: proxy_upstreams maps \"http(s)://host[:port]\" to an upstream name", 2)
        end
        map[key] = name
      end
    else
      settings[k] = v
    end
  end
  if opts.token_dict or opts.lock_timeout or opts.lock_ttl or opts.metrics_dict then stores = {} end
  if opts.metrics_dict then metrics = nil end
  return settings
end

function _M.settings()
  return settings
end

--- The token store on the configured lua_shared_dict (one per worker, shared by all workers'
-- clients through the dict). Returns store or nil, err.
function _M.token_store(dict_name)
  dict_name = dict_name or settings.token_dict
  local store = stores[dict_name]
  if store then return store end
  local err
  store, err = require("loyalty.ngx.token_store").new(dict_name, {
    lock_timeout = settings.lock_timeout, lock_ttl = settings.lock_ttl,
  })
  if not store then return nil, err end
  local m = _M.metrics()
  if m then m:instrument_token_store(store) end
  stores[dict_name] = store
  return store
end

-- Weak keys: a config table dropped by its owner takes its program with it.
local programs = setmetatable({}, { __mode = "k" })
-- A config that failed is tried again after RETRY_S, not on every request (each try reads the
-- rule files and runs their fixtures); its reason is logged once per distinct message.
local RETRY_S = 1
local failures = setmetatable({}, { __mode = "k" })
local made, made_since = 0, nil -- programs built recently: many means a table per request
local MANY = 20

local function log_failure(config, err)
  local message = tostring(type(err) == "table" and (err.message or err.kind) or err)
  local f = failures[config]
  if not (f and f.message == message) then
    ngx.log(ngx.ERR, "loyalty: the storefront program could not be made: ", tostring(err))
  end
  failures[config] = { message = message, err = err, retry_at = ngx.now() + RETRY_S }
end

-- Program configs are either a path (cached by path) or a table (cached by identity).
--- One storefront program per worker and config, created on first use. Rule files are watched
-- by the program itself. Returns program or nil, err; a failure is logged (with its real message)
-- and the same config is tried again after a second, so a fix is picked up without a restart.
function _M.program(config)
  local program = programs[config]
  if program then return program end
  local f = failures[config]
  if f and ngx.now() < f.retry_at then return nil, f.err end
  local m = _M.metrics()
  local settings_for = config
  if m then
    -- count the program's events from the start (rules loaded or rejected while it is made)
    local loaded, lerr = settings_for, nil
    if type(config) == "string" then loaded, lerr = require("loyalty.program.config").load(config) end
    if not loaded then
      log_failure(config, lerr)
      return nil, lerr
    end
    settings_for = {}
    if type(loaded) == "table" then
      for k, v in pairs(loaded) do settings_for[k] = v end
      settings_for.log = m:log_sink(loaded.log or require("loyalty.log").default())
    else
      settings_for = loaded
    end
  end
  local ok, p, err = pcall(require("loyalty.program").new, settings_for)
  if not ok then p, err = nil, errors.config(tostring(p)) end
  if not p then
    log_failure(config, err)
    return nil, err
  end
  failures[config] = nil
  if m then
    m:instrument_client(p.client)
    local till_for = p.till_for
    p.till_for = function(self, order)
      local t, terr = till_for(self, order)
      if t and t.client then m:instrument_client(t.client) end
      return t, terr
    end
  end
  programs[config] = p
  local now = ngx.now()
  if not made_since or now - made_since > 60 then made, made_since = 0, now end
  made = made + 1
  if made == MANY then
    ngx.log(ngx.WARN, "loyalty: ", MANY, " storefront programs made in this worker within a minute: pass the ",
            "same settings table (a module-level one) or a path to loyalty.ngx.program, not a new table per ",
            "request (see docs/openresty.md)")
  end
  return p
end

--- The request body as a string (nil when there is none): nginx keeps a large one in a temp file.
function _M.request_body()
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data == nil then
    local file = ngx.req.get_body_file()
    if file then data = require("loyalty.util").read_file(file) end
  end
  return data
end

--- True where ngx.location.capture is allowed (and so the proxy transport can run).
local CAPTURE_PHASES = { rewrite = true, access = true, content = true }
function _M.capture_allowed()
  return CAPTURE_PHASES[env.phase()] == true
end

--- The default loyalty.log sink in nginx: one error_log line "loyalty: <event> k=v ..." (keys sorted).
function _M.log(level, event, fields)
  local parts = { "loyalty: ", event }
  local keys = {}
  for k in pairs(fields) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = " " .. k .. "=" .. tostring(fields[k]) end
  local lvl = ({ debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN, error = ngx.ERR })[level] or ngx.INFO
  ngx.log(lvl, table.concat(parts))
end

return _M

-- The outbox drainer inside OpenResty: a timer in every worker, and a shared-dict lock so that
-- one worker at a time drains. Call from init_worker_by_lua*:
--
--   require("loyalty.ngx.outbox_timer").start {
--     program = "/etc/store/store.conf.lua",  -- settings path or table (with an `outbox`), or a
--                                            -- function returning a program (called in the timer)
--     dict = "loyalty_locks",                -- a lua_shared_dict for the lock
--     interval = 5,                          -- seconds between drains
--   }
--
-- The program (and its outbox connection) is made lazily in each worker's first timer run,
-- where cosockets are available. With the SQLite backend each put/claim is a short blocking
-- fsync in the worker; a fleet should prefer the Redis backend.
local drainer = require "loyalty.outbox.drainer"
local env = require "loyalty.env"
local errors = require "loyalty.errors"
local schema = require "loyalty.schema"

local _M = {}

local function require_nginx()
  if not env.in_nginx then
    error("loyalty.ngx.outbox_timer: only available inside nginx (init_worker_by_lua)", 3)
  end
end

local function make_program(spec)
  if type(spec) == "function" then return spec() end
  return require("loyalty.program").new(spec)
end

local OPTIONS = {
  program = { type = { "string", "table", "function" }, doc = "settings path or table, or a function making one" },
  dict = { type = "string", doc = "a lua_shared_dict for the lock" },
  key = "string",
  interval = { type = "number", above = 0, default = 5, doc = "seconds between drains" },
  lock_ttl = { type = "number", above = 0, doc = "seconds" },
  drain = { type = "table", doc = "loyalty.outbox.drainer options" },
  on_drain = "function",
}

--- start{program, dict, key, interval, lock_ttl, drain = {drainer options}, on_drain(totals)}
-- -> true | nil, err (kind config). lock_ttl (default 10 × interval, at least 60 s) bounds how long a
-- worker that died mid-drain keeps others out.
function _M.start(opts)
  require_nginx()
  opts = schema.assert(OPTIONS, opts, "loyalty.ngx.outbox_timer.start", 2)
  if opts.program == nil or opts.dict == nil then
    error("loyalty.ngx.outbox_timer.start: {program = ..., dict = \"shared dict name\"} expected", 2)
  end
  local dict = ngx.shared[opts.dict]
  if not dict then return nil, errors.config("lua_shared_dict '" .. opts.dict .. "' is not declared", "dict") end
  local interval = opts.interval
  local key = opts.key or "loyalty:outbox:drain"
  local ttl = opts.lock_ttl or math.max(60, interval * 10)
  local program, failures = nil, 0

  local function tick(premature)
    if premature then return end
    -- One worker at a time: add() fails while another holds the lock.
    local got = dict:add(key, ngx.worker.pid(), ttl)
    if not got then return end
    local ok, err = pcall(function()
      if not program then
        local p, perr = make_program(opts.program)
        if not p then error(tostring(perr), 0) end
        if not p.outbox then error("the program has no outbox setting", 0) end
        program = p
      end
      local dopts = {}
      for k, v in pairs(opts.drain or {}) do dopts[k] = v end
      local s = program.settings and program.settings.outbox or {}
      dopts.max_attempts = dopts.max_attempts or s.max_attempts
      dopts.backoff_base_s = dopts.backoff_base_s or s.backoff_base_s
      dopts.backoff_max_s = dopts.backoff_max_s or s.backoff_max_s
      dopts.lease_s = dopts.lease_s or s.lease_s
      local totals, derr = drainer.run(program, program.outbox, dopts)
      if not totals then error(tostring(derr), 0) end
      if opts.on_drain then opts.on_drain(totals) end
    end)
    dict:delete(key)
    if not ok then
      failures = failures + 1
      -- Log every failure at first, then one in 60 (an outage would flood the log otherwise).
      if failures <= 3 or failures % 60 == 0 then
        ngx.log(ngx.ERR, "loyalty outbox drain failed (", failures, "): ", tostring(err))
      end
    else
      failures = 0
    end
  end

  local ok, err = ngx.timer.every(interval, tick)
  if not ok then return nil, errors.config("cannot start the outbox timer: " .. tostring(err)) end
  return true
end

return _M

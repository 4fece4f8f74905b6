-- Transport running the libcurl session in an nginx thread pool (ngx.run_worker_thread): the
-- worker's event loop stays free while a pool thread blocks in curl. Experimental in OpenResty.
-- Each pool thread runs its own Lua VM, so `perform` below keeps its own sessions (keep-alive
-- per thread VM) keyed by the session options; only strings, numbers, booleans and plain tables
-- cross between the VMs.
local transport = require "loyalty.transport"

local failure, as_error = transport.error, transport.as_error

local _M = {}

local Transport = {}
Transport.__index = Transport

local SESSION_OPTIONS = { "timeout_ms", "connect_timeout_ms", "ca_file", "ca_path", "insecure", "proxy" }

--- new(client_opts [, pool]) -> transport
function _M.new(opts, pool)
  opts = opts or {}
  local session_opts = {
    timeout_ms = opts.timeout_ms or require("loyalty.timeouts").request_ms,
    connect_timeout_ms = opts.connect_timeout_ms or require("loyalty.timeouts").connect_ms,
    ca_file = opts.ca_file, ca_path = opts.ca_path, insecure = opts.insecure, proxy = opts.proxy,
  }
  local key = {}
  for i, name in ipairs(SESSION_OPTIONS) do key[i] = tostring(session_opts[name]) end
  return setmetatable({
    pool = pool or require("loyalty.ngx").settings().thread_pool,
    session_opts = session_opts,
    key = table.concat(key, "\0"),
  }, Transport)
end

--- req -> res {status, headers, body, reused, total_ms} | nil, err (loyalty.errors)
function Transport:send(req)
  local called, ok, res, err = pcall(ngx.run_worker_thread, self.pool, "loyalty.ngx.thread",
                                     "perform", self.key, self.session_opts, req)
  if not called then
    -- raised: this phase does not allow worker threads (init_worker, log, filters)
    return nil, failure("config", "worker threads unavailable here: " .. tostring(ok))
  end
  if not ok then
    -- The pool is missing, its queue is full, or no thread VM could be made.
    return nil, failure("network", "worker thread pool '" .. self.pool .. "': " .. tostring(res))
  end
  if not res then return nil, as_error(err) end -- plain tables cross the VMs: the shape is made here
  return res
end

--- reqs on up to max_in_flight light threads, each waiting for a pool thread -> out[i] = res | { err = err }
function Transport:send_many(reqs, max_in_flight)
  return require("loyalty.ngx.transport").send_concurrently(self, reqs, max_in_flight)
end

function Transport.close() end

-- Everything below runs inside a pool thread's own Lua VM.
local sessions = {}

--- perform(key, session_opts, req) -> res | nil, err (in the thread VM)
function _M.perform(key, session_opts, req)
  local session = sessions[key]
  if not session then
    session = require("loyalty.core").session(session_opts)
    sessions[key] = session
  end
  local res, err = session:perform(req)
  if not res then return nil, { kind = err.kind, message = err.message, curl_code = err.curl_code } end
  return res
end

return _M

-- The libcurl transport: one keep-alive session per client, batches over libcurl's multi
-- interface. Blocking: outside nginx only. The contract is in loyalty.transport.
local core = require "loyalty.core"
local transport = require "loyalty.transport"
local timeouts = require "loyalty.timeouts"

local as_error = transport.as_error
local perform_multi = core.perform_multi

local _M = {}

-- session:exchange as a function, looked up once: on Lua 5.4 a method lookup through the
-- userdata's metatable is a measurable part of the one-call path.
local session_exchange

local Transport = {}
Transport.__index = Transport

function _M.new(opts)
  opts = opts or {}
  local session_opts = {
    timeout_ms = opts.timeout_ms or timeouts.request_ms,
    connect_timeout_ms = opts.connect_timeout_ms or timeouts.connect_ms,
    ca_file = opts.ca_file, ca_path = opts.ca_path, insecure = opts.insecure, proxy = opts.proxy,
    request_id_headers = opts.request_id_headers, -- the provider's, from the client
  }
  -- send_many's handles are made per batch with the same options as the session's.
  local session = core.session(session_opts)
  session_exchange = session_exchange or getmetatable(session).__index.exchange
  return setmetatable({ session = session, multi_opts = session_opts }, Transport)
end

--- req (from core.build_request) -> res {status, headers, body, reused, total_ms} | nil, err
function Transport:send(req)
  local res, err = self.session:perform(req)
  if res then return res end
  return nil, as_error(err)
end

--- The client's one-call path: build_request, perform and decode_reply in one C call
-- (session:exchange), none of their intermediate tables. -> reply | nil, err, stage
function Transport:exchange(spec, base_url, header_lines, raw_cap, timeout_ms, connect_timeout_ms)
  local reply, err, stage = session_exchange(self.session, spec.method, base_url, spec.path, spec.query, spec.json,
                                             spec.body, header_lines, raw_cap, timeout_ms, connect_timeout_ms)
  if reply then return reply end
  if stage == "transport" then err = as_error(err) end
  return nil, err, stage
end

--- reqs run concurrently, at most max_in_flight at once -> out[i] = res | { err = err }
function Transport:send_many(reqs, max_in_flight)
  local out = perform_multi(self.multi_opts, reqs, max_in_flight)
  for i = 1, #out do
    local r = out[i]
    if r.err then r.err = as_error(r.err) end
  end
  return out
end

function Transport:stats()
  return self.session:stats()
end

function Transport:close()
  self.session:close()
end

return _M

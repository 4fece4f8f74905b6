-- The transport contract: what loyalty.client asks of whatever moves its bytes.
--
--   transport:send(req) -> res | nil, err                                        (required)
--     req  {method, url, headers = {"Name: value", ...}, body?, timeout_ms, connect_timeout_ms}
--          as core.build_request makes it, plus this attempt's time: timeout_ms is what is left
--          of the call's deadline, connect_timeout_ms <= timeout_ms. Read it, never change it:
--          the client may reuse its headers array for the next request.
--     res  {status, headers = {lowercase name = value}, body}
--     err  a loyalty.errors table: kind network | timeout | tls | config, message, curl_code
--          (libcurl), retryable (network and timeout are). transport.error builds one.
--   transport:send_many(reqs, max_in_flight) -> out                              (optional)
--     the same requests at most max_in_flight at once; out[i] = res | { err = err } for reqs[i],
--     never nil. Without it the client sends them one after another (transport.send_many below).
--   transport:exchange(spec, base_url, header_lines, raw_cap, timeout_ms, connect_timeout_ms)
--     -> reply | nil, err, stage                                                  (optional)
--     build, send and decode in one step (the libcurl transport: one C call); reply and err as
--     from core.decode_reply, stage "build" | "transport" | "reply". The client uses it for calls
--     without per-call headers.
--   transport:close()                                                           (optional)
local errors = require "loyalty.errors"

local _M = {}

local RETRYABLE = { network = true, timeout = true }

--- A transport failure as a loyalty.errors table (kind network, timeout, tls or config).
function _M.error(kind, message, curl_code)
  if not errors.KINDS[kind] then kind = "network" end
  return errors.new { kind = kind, message = message, curl_code = curl_code, retryable = RETRYABLE[kind] == true }
end
local new_error = _M.error

--- A transport's err as a loyalty.errors table: kept when it is one, else built from its
-- kind, message and curl_code (the C core's shape, or an older custom transport's).
function _M.as_error(err)
  if errors.is_error(err) then return err end
  if type(err) ~= "table" then return new_error("network", tostring(err)) end
  return new_error(err.kind, err.message, err.curl_code)
end
local as_error = _M.as_error

--- transport:send_many when it has one; else the requests one after another through send.
-- Returns out[i] = res | { err = err } (err a loyalty.errors table).
function _M.send_many(transport, reqs, max_in_flight)
  if transport.send_many then
    local out = transport:send_many(reqs, max_in_flight)
    for i = 1, #reqs do
      local r = out[i]
      if r == nil then
        out[i] = { err = new_error("network", "transport gave no reply for this request") }
      elseif r.err then
        r.err = as_error(r.err)
      end
    end
    return out
  end
  local out = {}
  for i = 1, #reqs do
    local res, err = transport:send(reqs[i])
    out[i] = res or { err = as_error(err) }
  end
  return out
end

--- Whether transport runs send_many concurrently (the client's batch deadline counts waves of
-- max_in_flight requests, or single requests without it).
function _M.concurrent(transport)
  return transport.send_many ~= nil
end

return _M

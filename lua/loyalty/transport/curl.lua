-- The libcurl transport: one keep-alive session per client. Blocking: outside nginx only.
local core = require "loyalty.core"

local _M = {}

local Transport = {}
Transport.__index = Transport

function _M.new(opts)
  opts = opts or {}
  local session = core.session {
    timeout_ms = opts.timeout_ms or 10000,
    connect_timeout_ms = opts.connect_timeout_ms or 3000,
    ca_file = opts.ca_file, ca_path = opts.ca_path, insecure = opts.insecure, proxy = opts.proxy,
    request_id_headers = opts.request_id_headers, -- the provider's, from the client
  }
  return setmetatable({ session = session }, Transport)
end

--- req (from core.build_request) -> res {status, headers, body} | nil, err {kind, message, curl_code}
function Transport:send(req)
  return self.session:perform(req)
end

function Transport:stats()
  return self.session:stats()
end

function Transport:close()
  self.session:close()
end

return _M

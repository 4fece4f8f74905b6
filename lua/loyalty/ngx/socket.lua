-- The cosocket transport: the C core's request bytes over ngx.socket.tcp, the reply bytes back to
-- the C core (core.http_reply frames them, core.decode_reply decodes them). HTTP/1.1 keep-alive
-- through nginx's per-origin connection pools, TLS verified by default, per-attempt timeouts.
-- Works wherever cosockets do: rewrite, access, content, ngx.timer, ssl_certificate and
-- ngx.thread light threads (not init, init_worker, set, header/body filter or log phases).
local core = require "loyalty.core"

local http_reply = core.http_reply
local tcp = ngx.socket.tcp
local now = ngx.now
local find, sub, lower, concat, tonumber, pcall = string.find, string.sub, string.lower, table.concat, tonumber, pcall
local floor = math.floor

local _M = {}

local Transport = {}
Transport.__index = Transport

local timeouts = require "loyalty.timeouts"
local DEFAULT_TIMEOUT_MS, DEFAULT_CONNECT_MS = timeouts.request_ms, timeouts.connect_ms
-- Reply bytes are read as they arrive; a known Content-Length is read in one go.
local READ_CHUNK = 65536
-- Wire texts of bodiless requests kept per header-line array and method, at most this many
-- URLs each: the client reuses its arrays, and a shop asks the same URLs again (a shopper's
-- summary on every page view), so those are sent without building anything.
local WIRE_MAX = 256
local NO_HEADERS = {}
-- Lines the transport writes itself (framing belongs to the transport, not the caller).
local OWN = { host = true, ["content-length"] = true, connection = true, ["transfer-encoding"] = true,
              ["accept-encoding"] = true }

--- new(client_opts) -> transport. Uses timeout_ms and connect_timeout_ms (the defaults when a
-- request carries none), insecure (no certificate check) and, from loyalty.ngx settings,
-- socket_pool_size, socket_keepalive_ms and gzip. ca_file/ca_path do not apply: nginx verifies
-- against lua_ssl_trusted_certificate. An HTTP proxy is not supported (a config error per call).
local warned_ca = false

function _M.new(opts, settings)
  opts = opts or {}
  settings = settings or require("loyalty.ngx").settings()
  if (opts.ca_file or opts.ca_path) and not warned_ca then
    warned_ca = true
    ngx.log(ngx.WARN, "loyalty: the cosocket transport checks certificates against lua_ssl_trusted_certificate; ",
            "the client's ca_file/ca_path are not used in nginx")
  end
  return setmetatable({
    timeout_ms = opts.timeout_ms or DEFAULT_TIMEOUT_MS,
    connect_timeout_ms = opts.connect_timeout_ms or DEFAULT_CONNECT_MS,
    verify = not opts.insecure,
    proxy = opts.proxy,
    pool_size = settings.socket_pool_size or 64,
    keepalive_ms = settings.socket_keepalive_ms or timeouts.keepalive_ms,
    accept = (settings.gzip ~= false) and "Accept-Encoding: gzip\r\n" or "",
    origins = {},
    heads = setmetatable({}, { __mode = "k" }), -- header-line arrays -> their wire text
    wires = setmetatable({}, { __mode = "k" }), -- header-line arrays -> method -> url -> {origin, text}
  }, Transport)
end

-- "https://Host:8443" -> {host, port, tls, host_header, sni, pool, ...}; nil for a bad origin.
local function parse_origin(self, origin)
  local scheme, authority = origin:match("^(https?)://([^/?#@]+)$")
  if not scheme then return nil end
  scheme = lower(scheme)
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host then return nil end
  local tls = scheme == "https"
  port = tonumber(port) or (tls and 443 or 80)
  if port < 1 or port > 65535 then return nil end
  local o = {
    host = host, port = port, tls = tls, sni = (tls and not host:find("^[%d%.]+$") and not authority:find("^%["))
                                            and host or nil,
    host_line = "Host: " .. authority .. "\r\n",
    -- one pool per origin and TLS check setting: never hand a verified caller an unverified connection
    pool = "loyalty:" .. lower(origin) .. (tls and (self.verify and ":v" or ":nv") or ""),
  }
  o.connect_opts = { pool = o.pool, pool_size = self.pool_size }
  return o
end

-- The wire text of a header-line array (cached per array: the client reuses its arrays).
local function head_text(self, lines)
  local text = self.heads[lines]
  if text then return text end
  local out = {}
  for i = 1, #lines do
    local line = lines[i]
    local name = line:match("^([^:]+):")
    if not (name and OWN[lower(name)]) then out[#out + 1] = line .. "\r\n" end
  end
  text = concat(out) .. self.accept
  self.heads[lines] = text
  return text
end

-- The transport contract's error shape (loyalty.errors, see loyalty.transport).
local new_error = require("loyalty.transport").error
local function failure(kind, message)
  return nil, new_error(kind, message)
end

local function io_error(what, err)
  if err == "timeout" then return failure("timeout", "CRM " .. what .. " timed out") end
  return failure("network", "CRM " .. what .. ": " .. tostring(err))
end

-- Reply bytes beyond this are refused (CRM replies are JSON documents of a few KB to a few MB).
local REPLY_MAX = 32 * 1024 * 1024

-- What is left of the attempt's time (whole ms), the socket's timeouts cut to it; nil, err (and
-- the socket closed) when nothing is. Called only after time has passed, so it always cuts.
local function cut_to_deadline(sock, deadline, connect_ms, message)
  local left = floor(deadline - now() * 1000)
  if left < 1 then
    sock:close()
    return failure("timeout", message)
  end
  sock:settimeouts(connect_ms or left, left, left)
  return left
end

-- One exchange on one connection. Returns res | nil, err, retry (retry: a reused connection
-- that the peer had closed before sending anything; safe to repeat on a fresh one).
-- Until the head is complete each read is appended and parsed; then a known length is read in
-- one go, and chunked or read-to-close bodies are collected in a table and parsed only when
-- they can be complete (the data ends a line, or the peer closed): linear in the reply size.
local function exchange(self, sock, reused, payload, head_req, deadline)
  local ok, err = sock:send(payload)
  if not ok then
    sock:close()
    if reused > 0 and err ~= "timeout" then return nil, nil, true end
    return io_error("send", err)
  end
  local buf, want, framing, parts, size
  while true do
    local data
    if want then
      data, err = sock:receive(want - #buf)
    else
      data, err = sock:receiveany(READ_CHUNK)
    end
    local eof = false
    if not data then
      if err ~= "closed" or not (buf or parts) then
        sock:close()
        if not buf and reused > 0 and err ~= "timeout" then return nil, nil, true end
        return io_error("read", err)
      end
      eof = true
    end
    local parse = true
    if parts then
      if data then
        parts[#parts + 1] = data
        size = size + #data
        -- a chunked body can only be complete at the end of a line; a read-to-close one at the end
        parse = framing == "chunked" and data:byte(-1) == 10
      end
      if parse then
        buf = concat(parts)
        parts = { buf }
      end
    elseif data then
      buf = buf and (buf .. data) or data
      size = #buf
    end
    if size > REPLY_MAX then
      sock:close()
      return failure("network", "CRM reply larger than " .. REPLY_MAX .. " bytes")
    end
    if parse then
      local status, headers, body, keep = http_reply(buf, eof, head_req)
      if status then
        if keep and not eof then
          sock:setkeepalive(self.keepalive_ms)
        else
          sock:close()
        end
        return { status = status, headers = headers, body = body, reused = reused > 0 }
      end
      if status == nil then
        sock:close()
        return failure("network", "CRM reply not understood: " .. tostring(headers))
      end
      want, framing = headers, body -- false, total bytes needed (Content-Length), framing
      if (framing == "chunked" or framing == "close") and not parts then parts, size = { buf }, #buf end
    end
    -- later reads get what is left of this attempt's time
    local left, terr = cut_to_deadline(sock, deadline, nil, "CRM read timed out")
    if not left then return nil, terr end
  end
end

--- req {method, url, headers = {"Name: value"...}, body, timeout_ms?, connect_timeout_ms?}
--  -> res {status, headers (lowercase names), body, reused} | nil, {kind, message}
function Transport:send(req)
  if self.proxy then
    return failure("config", "the cosocket transport does not use an HTTP proxy: unset 'proxy' or choose the " ..
                   "thread transport")
  end
  local url, method, body, lines = req.url, req.method, req.body, req.headers or NO_HEADERS
  local o, payload, cache
  if not body then
    local by_method = self.wires[lines]
    if not by_method then
      by_method = {}
      self.wires[lines] = by_method
    end
    cache = by_method[method]
    if not cache then
      cache = { 0 } -- [1]: how many URLs it holds
      by_method[method] = cache
    end
    local hit = cache[url]
    if hit then o, payload = hit[1], hit[2] end
  end
  if not payload then
    local slash = find(url, "/", 9, true)
    local origin = slash and sub(url, 1, slash - 1) or url
    o = self.origins[origin]
    if not o then
      o = parse_origin(self, origin)
      if not o then return failure("config", "not an http(s) URL") end
      self.origins[origin] = o
    end
    local target = slash and sub(url, slash) or "/"
    local q = find(target, "#", 1, true)
    if q then target = sub(target, 1, q - 1) end
    local length = ""
    if body or method == "POST" or method == "PUT" or method == "PATCH" then
      length = "Content-Length: " .. #(body or "") .. "\r\n"
    end
    -- one string: nginx copies it to the socket as it is (a table is walked twice first)
    local head = method .. " " .. target .. " HTTP/1.1\r\n" .. o.host_line .. head_text(self, lines) .. length ..
                 "\r\n"
    if body then
      payload = { head, body } -- the body is not copied into a Lua string of its own
    else
      payload = head
      local n = cache[1]
      if n >= WIRE_MAX then
        cache = { 0 }
        self.wires[lines][method] = cache
        n = 0
      end
      cache[url], cache[1] = { o, head }, n + 1
    end
  end

  local total = req.timeout_ms or self.timeout_ms
  if total < 1 then return failure("timeout", "no time left for the CRM call") end
  local connect_ms = req.connect_timeout_ms or self.connect_timeout_ms
  if connect_ms > total then connect_ms = total end
  local deadline = now() * 1000 + total

  local head_req = method == "HEAD"

  for attempt = 1, 2 do -- a second time only when a pooled connection turned out closed
    local sock = tcp()
    if attempt == 1 then
      sock:settimeouts(connect_ms, total, total)
    else -- the closed connection took some of the time: the second try gets what is left
      local left = floor(deadline - now() * 1000)
      if left < 1 then return failure("timeout", "no time left for the CRM call") end
      sock:settimeouts(connect_ms < left and connect_ms or left, left, left)
    end
    local called, ok, err = pcall(sock.connect, sock, o.host, o.port, o.connect_opts)
    if not called then
      return failure("config", "cosockets are not available in this nginx phase (" .. tostring(ok) .. ")")
    end
    if not ok then return io_error("connect", err) end
    local reused = sock:getreusedtimes()
    if reused == 0 then
      if o.tls then
        -- lua-resty-core 0.1.25: a handshake that completes at once but fails verification raises
        -- an assertion when a session is asked for (and returns true when none is): ask for one
        -- and take a raise as the failure it is
        local returned, done, herr = pcall(sock.sslhandshake, sock, nil, o.sni, self.verify)
        if not returned then done, herr = nil, "certificate verification failed (" .. tostring(done) .. ")" end
        if not done then
          sock:close()
          if herr == "timeout" then return failure("timeout", "CRM TLS handshake timed out") end
          return failure("tls", "CRM TLS handshake failed: " .. tostring(herr) ..
                         (self.verify and " (certificates are checked against lua_ssl_trusted_certificate)" or ""))
        end
      end
      -- a new connection (and handshake) took time: the exchange gets what is left
      local left, terr = cut_to_deadline(sock, deadline, connect_ms, "CRM connect used up the time")
      if not left then return nil, terr end
    end
    local res, rerr, retry = exchange(self, sock, reused, payload, head_req, deadline)
    if not retry then return res, rerr end
  end
  return failure("network", "CRM closed the connection before replying")
end

function Transport.close() end

--- reqs on up to max_in_flight light threads -> out[i] = res | { err = err }
function Transport:send_many(reqs, max_in_flight)
  return require("loyalty.ngx.transport").send_concurrently(self, reqs, max_in_flight)
end

return _M

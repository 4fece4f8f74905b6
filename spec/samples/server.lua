-- The documented-sample replay server: serves the reply files of spec/samples/ verbatim and logs
-- every request it receives, one JSON line each, for the spec to compare with the documented request.
-- Usage: lua5.4 spec/samples/server.lua ROUTES_FILE LOG_FILE PORT_FILE
-- ROUTES_FILE: lines "METHOD /scenario/path reply-file" (reply files: see samples.lua).
-- Binds 127.0.0.1 on a free port, writes the port to PORT_FILE, serves until killed.
local socket = require "socket"
local cjson = require "cjson"

local routes_file, log_file, port_file = arg[1], arg[2], arg[3]
assert(routes_file and log_file and port_file, "usage: server.lua ROUTES LOG PORTFILE")

package.path = "spec/?.lua;" .. package.path
local samples = require "samples.samples"

local routes = {}
for line in io.lines(routes_file) do
  local method, path, file = line:match("^(%S+)%s+(%S+)%s+(%S+)$")
  if method then routes[method .. " " .. path] = file end
end

local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
local pf = assert(io.open(port_file .. ".tmp", "w"))
pf:write(port)
pf:close()
assert(os.rename(port_file .. ".tmp", port_file))

local log = assert(io.open(log_file, "a"))

local function gzip(body)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(body)
  f:close()
  local p = assert(io.popen("gzip -cn < '" .. tmp .. "'"))
  local out = p:read("*a")
  p:close()
  os.remove(tmp)
  return out
end

-- encoding "gzip-chunked": the body gzipped and sent in chunks, as the documented reply headers show.
local function respond(conn, status, body, headers, encoding)
  local lines = { "HTTP/1.1 " .. status .. " Sample" }
  if not (headers and headers["Content-Type"]) then lines[#lines + 1] = "Content-Type: application/json" end
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  lines[#lines + 1] = "Connection: close"
  if encoding ~= "gzip-chunked" then
    lines[#lines + 1] = "Content-Length: " .. #body
    conn:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
    return
  end
  local z = gzip(body)
  local parts = { table.concat(lines, "\r\n") .. "\r\n\r\n" }
  for i = 1, #z, 64 do
    local chunk = z:sub(i, i + 63)
    parts[#parts + 1] = string.format("%x\r\n", #chunk) .. chunk .. "\r\n"
  end
  parts[#parts + 1] = "0\r\n\r\n"
  conn:send(table.concat(parts))
end

local function serve(conn)
  conn:settimeout(5)
  local request_line = conn:receive("*l")
  if not request_line then return end
  local method, target = request_line:match("^(%u+) (%S+) HTTP/1%.%d$")
  local headers = {}
  while true do
    local h = conn:receive("*l")
    if not h or h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    if k then
      headers[k:lower()] = v
    end
  end
  local body = ""
  local len = tonumber(headers["content-length"])
  if len and len > 0 then body = conn:receive(len) or "" end
  local path, query = (target or ""):match("^([^?]*)%??(.*)$")
  log:write(cjson.encode { method = method, path = path, query = query, headers = headers, body = body }, "\n")
  log:flush()
  local file = routes[(method or "") .. " " .. (path or "")]
  if not file then return respond(conn, 404, '{"error":"no sample for this request"}') end
  local sample = samples.read(file)
  respond(conn, sample.status, sample.body, sample.headers, sample.meta.encoding)
end

while true do
  local conn = server:accept()
  if conn then
    pcall(serve, conn)
    conn:close()
  end
end

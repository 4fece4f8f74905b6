-- A tiny scripted HTTP server for specs (lua-socket, one connection at a time, Connection: close).
-- Run as `lua5.4 spec/support/script_server.lua PORT DIR`: every request re-reads DIR/reply.lua,
-- a chunk returning {status, headers = {Name = value}, body, delay_ms}, and appends its request
-- line to DIR/requests. Start and stop it from specs with support.script_server.start().
if arg and arg[0] and arg[0]:match("script_server%.lua$") and arg[1] then
  local socket = require "socket"
  local port, dir = tonumber(arg[1]), arg[2]
  local server = assert(socket.bind("127.0.0.1", port))
  local ready = assert(io.open(dir .. "/ready", "w"))
  ready:write("ok")
  ready:close()
  while true do
    local c = server:accept()
    if c then
      c:settimeout(5)
      local line = c:receive("*l")
      local len = 0
      while line do
        local h = c:receive("*l")
        if not h or h == "" then break end
        local n = h:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
        if n then len = tonumber(n) end
      end
      if len > 0 then c:receive(len) end
      local log = io.open(dir .. "/requests", "a")
      if log then
        log:write(tostring(line), "\n")
        log:close()
      end
      local ok, reply = pcall(dofile, dir .. "/reply.lua")
      if not ok or type(reply) ~= "table" then reply = { status = 500, body = "no script: " .. tostring(reply) } end
      if reply.delay_ms then socket.sleep(reply.delay_ms / 1000) end
      local body = reply.body or ""
      local out = { "HTTP/1.1 " .. (reply.status or 200) .. " X", "Connection: close",
                    "Content-Length: " .. #body }
      for k, v in pairs(reply.headers or {}) do out[#out + 1] = k .. ": " .. v end
      c:send(table.concat(out, "\r\n") .. "\r\n\r\n" .. body)
      c:close()
    end
  end
end

local _M = {}

--- start() -> server {url, reply(t), requests(), stop()}; raises when it cannot start.
function _M.start()
  local proc = require "outbox.helpers.proc"
  local socket = require "socket"
  local dir = proc.tmpdir()
  local port = proc.free_port()
  local here = debug.getinfo(1, "S").source:sub(2)
  local pid = proc.spawn({ "lua5.4", here, tostring(port), dir }, dir .. "/log")
  local deadline = socket.gettime() + 10
  while not io.open(dir .. "/ready") do
    if socket.gettime() > deadline or not proc.alive(pid) then
      proc.stop(pid)
      error("script server did not start")
    end
    socket.sleep(0.02)
  end
  local s = { url = "http://127.0.0.1:" .. port, port = port, dir = dir }
  --- The reply for the next requests: {status, headers, body, delay_ms}.
  function s.reply(t)
    local f = assert(io.open(dir .. "/reply.lua.tmp", "w"))
    f:write("return ", string.format("{ status = %d, delay_ms = %s, body = %q, headers = {",
      t.status or 200, tostring(t.delay_ms or "nil"), t.body or ""))
    for k, v in pairs(t.headers or {}) do f:write(string.format("[%q] = %q,", k, v)) end
    f:write("} }\n")
    f:close()
    assert(os.rename(dir .. "/reply.lua.tmp", dir .. "/reply.lua"))
    os.remove(dir .. "/requests")
  end
  --- How many requests arrived since the last reply().
  function s.requests()
    local f = io.open(dir .. "/requests")
    if not f then return 0 end
    local n = 0
    for _ in f:lines() do n = n + 1 end
    f:close()
    return n
  end
  function s.stop()
    proc.stop(pid)
    proc.rmdir(dir)
  end
  return s
end

return _M

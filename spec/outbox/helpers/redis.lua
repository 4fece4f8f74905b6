-- A private redis-server for a spec: a free 127.0.0.1 port, a temp dir, AOF with fsync on every
-- write (the outbox's durability setting). stop() kills it and removes the dir.
local proc = require "outbox.helpers.proc"
local socket = require "socket"

local _M = {}

function _M.available()
  return os.execute("command -v redis-server >/dev/null 2>&1") == true
    or os.execute("command -v redis-server >/dev/null 2>&1") == 0
end

-- opts: password (the server then requires AUTH).
function _M.start(opts)
  local dir = proc.tmpdir()
  local port = proc.free_port()
  local argv = { "redis-server", "--port", tostring(port), "--bind", "127.0.0.1", "--dir", dir,
                 "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no" }
  if opts and opts.password then
    argv[#argv + 1] = "--requirepass"
    argv[#argv + 1] = opts.password
  end
  local pid = proc.spawn(argv, dir .. "/redis.log")
  local server = { port = port, pid = pid, dir = dir, host = "127.0.0.1" }
  function server.stop()
    proc.stop(pid)
    proc.rmdir(dir)
  end
  for _ = 1, 300 do
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect("127.0.0.1", port) then
      c:send("PING\r\n")
      local line = c:receive("*l")
      c:close()
      if line == "+PONG" or (line and line:find("^%-NOAUTH")) then return server end
    else
      c:close()
    end
    socket.sleep(0.02)
  end
  local log = proc.read(dir .. "/redis.log")
  server.stop()
  error("redis-server did not start: " .. log)
end

return _M

-- Child processes for the outbox specs: start in the background, SIGKILL, wait, clean up.
local socket = require "socket"

local _M = {}

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.quote = sh_quote

--- spawn(argv, log_path) -> pid: runs argv in the background, stdout+stderr to log_path.
function _M.spawn(argv, log_path)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = sh_quote(a) end
  local cmd = table.concat(parts, " ") .. " >" .. sh_quote(log_path or "/dev/null") .. " 2>&1 & echo $!"
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("*l"))
  p:close()
  assert(pid, "could not start " .. tostring(argv[1]))
  return pid
end

function _M.alive(pid)
  -- A zombie (exited, not yet reaped by its shell parent) counts as gone.
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local stat = f:read("*l") or ""
  f:close()
  return not stat:match("^%d+ %b() Z")
end

function _M.kill(pid, signal)
  os.execute("kill -" .. (signal or "KILL") .. " " .. tonumber(pid) .. " 2>/dev/null")
end

--- Waits until pid is gone, at most timeout seconds. Returns true when gone.
function _M.wait(pid, timeout)
  local deadline = socket.gettime() + (timeout or 10)
  while _M.alive(pid) do
    if socket.gettime() > deadline then return false end
    socket.sleep(0.01)
  end
  return true
end

--- Kills pid (SIGKILL) and waits for it.
function _M.stop(pid)
  if pid and _M.alive(pid) then
    _M.kill(pid, "KILL")
    _M.wait(pid, 5)
  end
end

function _M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

function _M.tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/loyalty-outbox.XXXXXX"))
  local dir = p:read("*l")
  p:close()
  return dir
end

function _M.rmdir(dir)
  if dir and dir:match("^/tmp/loyalty%-outbox%.") then os.execute("rm -rf " .. sh_quote(dir)) end
end

function _M.read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

return _M

-- The one module that looks at `ngx`: whether this code runs inside nginx, whether the current
-- phase may yield (cosockets, ngx.sleep), and the sleep and clocks that follow from that.
local core = require "loyalty.core"

local ngx = rawget(_G, "ngx")

local _M = {}

local in_nginx = type(ngx) == "table" and type(ngx.get_phase) == "function"
_M.in_nginx = in_nginx

-- Phases where cosockets and ngx.sleep work (lua-nginx-module's "context" lists).
local YIELDING = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

--- The nginx phase ("content", "timer", ...), or nil outside nginx.
function _M.phase()
  if in_nginx then return ngx.get_phase() end
  return nil
end

--- True where ngx.sleep and cosockets may be used now; false outside nginx.
function _M.can_yield()
  return in_nginx and YIELDING[ngx.get_phase()] == true
end

--- Sleeps without blocking nginx's event loop where it can yield; blocks otherwise (plain Lua,
-- or an nginx phase that cannot yield, such as init).
function _M.sleep(seconds)
  if in_nginx and YIELDING[ngx.get_phase()] then return ngx.sleep(seconds) end
  return core.sleep(seconds)
end

--- Monotonic seconds (a float): deadlines and durations. Never goes back with the wall clock.
_M.now = core.now

--- Wall-clock seconds since the epoch (an integer): expiry times stored for other processes.
_M.time = os.time

--- Wall-clock milliseconds: nginx's cached time inside nginx (no syscall), else whole seconds.
function _M.time_ms()
  if in_nginx then return ngx.now() * 1000 end
  return os.time() * 1000
end

--- Wall-clock seconds with sub-second precision where there is a clock for it (nginx's cached
-- time, else LuaSocket's gettime, else whole seconds): times stored for other processes.
_M.wall_time = (function()
  if in_nginx then return ngx.now end
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" and socket.gettime then return socket.gettime end
  return os.time
end)()

--- The nginx worker's pid, or nil outside nginx.
function _M.worker_pid()
  if in_nginx and ngx.worker then return ngx.worker.pid() end
  return nil
end

--- A cosocket (ngx.socket.tcp) where the current phase may use one; nil elsewhere (plain Lua, or
-- a phase such as init or init_worker that cannot yield): the caller then uses LuaSocket.
function _M.tcp()
  if in_nginx and YIELDING[ngx.get_phase()] then return ngx.socket.tcp() end
  return nil
end

return _M

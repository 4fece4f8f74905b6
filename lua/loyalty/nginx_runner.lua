-- Starts and stops a private nginx (with the Lua module) under a temporary prefix.
-- Used by the sandbox, the OpenResty example and the tests; never touches the system nginx.
local _M = {}

local MODULE_DIRS = { "/usr/lib/nginx/modules", "/usr/share/nginx/modules" }

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.shell_quote = shell_quote

-- os.execute returns a number on 5.1/LuaJIT and (ok, how, code) on 5.2+.
local function run(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0, a end
  return a == true, c
end
_M.run = run

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
_M.read_file = read_file

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function sleep(seconds)
  run("sleep " .. string.format("%.3f", seconds))
end
_M.sleep = sleep

-- The checkout root: two levels above this file (lua/loyalty/nginx_runner.lua).
local function tree_root()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)lua/loyalty/[^/]*$")
  if not dir then return nil end
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    dir = p:read("*l") .. "/" .. dir
    p:close()
  end
  dir = dir:gsub("/+$", "")
  return dir
end
_M.tree_root = tree_root

local function find_nginx()
  for _, p in ipairs { "/usr/sbin/nginx", "/usr/local/openresty/nginx/sbin/nginx", "/usr/bin/nginx" } do
    if exists(p) then return p end
  end
  return "nginx"
end

local function load_module_lines()
  for _, dir in ipairs(MODULE_DIRS) do
    if exists(dir .. "/ngx_http_lua_module.so") then
      local lines = {}
      if exists(dir .. "/ndk_http_module.so") then
        lines[#lines + 1] = "load_module " .. dir .. "/ndk_http_module.so;"
      end
      lines[#lines + 1] = "load_module " .. dir .. "/ngx_http_lua_module.so;"
      return table.concat(lines, "\n")
    end
  end
  return "" -- OpenResty: the Lua module is built in
end

local function default_paths()
  local root = tree_root()
  local lpath, cpath = "", ""
  if root then
    lpath = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;"
    cpath = root .. "/build/5.1/?.so;"
  end
  return lpath .. ";;", cpath .. ";;"
end

local function mktemp_dir()
  local p = io.popen("mktemp -d /tmp/loyalty-nginx.XXXXXX")
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp failed")
  return dir
end

local function render(opts, prefix, port)
  local lpath, cpath = default_paths()
  local http = (opts.http or ""):gsub("%${port}", tostring(port)):gsub("%${next_port}", tostring(port + 1))
                                :gsub("%${prefix}", prefix)
  local main = (opts.main or ""):gsub("%${prefix}", prefix)
  return table.concat({
    load_module_lines(),
    "daemon " .. (opts.foreground and "off" or "on") .. ";",
    "master_process on;",
    "worker_processes " .. (opts.workers or 1) .. ";",
    "pid " .. prefix .. "/nginx.pid;",
    "error_log " .. (opts.error_log or (prefix .. "/error.log")) .. " " .. (opts.log_level or "warn") .. ";",
    main,
    "events { worker_connections " .. (opts.worker_connections or 1024) .. "; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path " .. prefix .. "/body;",
    "  proxy_temp_path " .. prefix .. "/proxy;",
    "  fastcgi_temp_path " .. prefix .. "/fastcgi;",
    "  uwsgi_temp_path " .. prefix .. "/uwsgi;",
    "  scgi_temp_path " .. prefix .. "/scgi;",
    "  lua_package_path " .. shell_quote((opts.lua_package_path or "") .. lpath) .. ";",
    "  lua_package_cpath " .. shell_quote((opts.lua_package_cpath or "") .. cpath) .. ";",
    http,
    "}",
    "",
  }, "\n")
end
_M.render = render

local Server = {}
Server.__index = Server

function Server:pid()
  local s = read_file(self.prefix .. "/nginx.pid")
  return s and tonumber(s:match("%d+"))
end

function Server:error_log()
  return read_file(self.prefix .. "/error.log") or ""
end

-- Alive and not a zombie (PID 1 here may be slow to reap daemonised processes).
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return run("kill -0 " .. pid .. " 2>/dev/null") end
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- Stops nginx (TERM, then KILL after `grace` seconds) and removes the prefix. Idempotent.
function Server:stop(grace)
  if self.stopped then return true end
  self.stopped = true
  local pid = self:pid()
  if pid then
    run("kill -TERM " .. pid .. " 2>/dev/null")
    local deadline = os.time() + (grace or 5)
    while alive(pid) and os.time() <= deadline do
      sleep(0.01)
    end
    if alive(pid) then run("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  if not self.keep_prefix then run("rm -rf " .. shell_quote(self.prefix)) end
  return true
end
Server.close = Server.stop
Server.__gc = Server.stop
Server.__close = Server.stop

local function random_port()
  local seed = os.time() + math.floor((os.clock() * 1e6) % 1e6)
  math.randomseed(seed)
  return math.random(20000, 59999)
end

--- Starts nginx. opts: http (string, the http{} body; "${port}", "${next_port}" (port + 1, for a
-- second listener) and "${prefix}" are substituted), main (main-context directives), port (nil: a free one), workers,
-- foreground (exec in the foreground and return when nginx exits), lua_package_path/cpath
-- (prepended to the in-tree paths), log_level, keep_prefix.
-- Returns a Server {port, url, prefix, stop()} or nil, message.
function _M.start(opts)
  assert(type(opts) == "table", "nginx_runner.start: options table expected")
  local nginx = opts.nginx or find_nginx()
  local tries = opts.port and 1 or 8
  local last_err
  for _ = 1, tries do
    local prefix = opts.prefix or mktemp_dir()
    local port = opts.port or random_port()
    -- Run as root, nginx workers are `nobody`: they must be able to write request bodies.
    for _, d in ipairs { "body", "proxy", "fastcgi", "uwsgi", "scgi" } do
      run("mkdir -p " .. shell_quote(prefix .. "/" .. d) .. " && chmod 777 " .. shell_quote(prefix .. "/" .. d))
    end
    run("chmod 755 " .. shell_quote(prefix))
    write_file(prefix .. "/nginx.conf", render(opts, prefix, port))
    local cmd = nginx .. " -q -p " .. shell_quote(prefix) .. " -c " .. shell_quote(prefix .. "/nginx.conf")
    if opts.foreground then
      -- nginx replaces the shell and, where setpriv exists, stops when this process dies.
      local pdeath = run("command -v setpriv >/dev/null 2>&1") and "setpriv --pdeathsig TERM " or ""
      local ok = run("exec " .. pdeath .. cmd)
      if not opts.keep_prefix then run("rm -rf " .. shell_quote(prefix)) end
      return ok
    end
    local ok = run(cmd .. " 2>" .. shell_quote(prefix .. "/start.err"))
    if ok then
      local srv = setmetatable({
        port = port, prefix = prefix, url = "http://127.0.0.1:" .. port, keep_prefix = opts.keep_prefix,
      }, Server)
      return srv
    end
    last_err = (read_file(prefix .. "/start.err") or "") .. (read_file(prefix .. "/error.log") or "")
    run("rm -rf " .. shell_quote(prefix))
    if not last_err:find("in use", 1, true) then break end
  end
  return nil, "nginx failed to start: " .. (last_err or "?")
end

return _M

-- Starts and stops a private nginx (with the Lua module) under a temporary prefix.
-- Used by the sandbox, the OpenResty example and the tests; never touches the system nginx.
local util = require "loyalty.util"
local errors = require "loyalty.errors"

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

local read_file = util.read_file
_M.read_file = read_file -- the specs' helper too

local function write_file(path, data)
  assert(util.write_file(path, data))
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

-- The checkout root (the directory holding lua/loyalty/), or nil when installed in a LuaRocks tree.
local function tree_root()
  return require("loyalty.paths").checkout_root()
end
_M.tree_root = tree_root

local function find_nginx()
  for _, p in ipairs { "/usr/sbin/nginx", "/usr/local/openresty/nginx/sbin/nginx", "/usr/bin/nginx" } do
    if exists(p) then return p end
  end
  if run("command -v nginx >/dev/null 2>&1") then return "nginx" end
  return nil
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

-- nginx runs LuaJIT: the Lua modules are shared by both VMs, the C core must be LuaJIT's. From a
-- checkout that is build/5.1; from a tree, the LuaJIT core the lua-loyalty-sandbox rock builds (or
-- the 5.1 tree's own). ";;" is LuaJIT's default path, where Debian's lua-cjson lives.
local function default_paths()
  local paths = require("loyalty.paths")
  local root = paths.checkout_root()
  if root then
    return root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;", root .. "/build/5.1/?.so;;"
  end
  local tree, ver = paths.tree()
  if not tree then return ";;", ";;" end
  local share = tree .. "/share/lua/" .. ver
  local cpath = ""
  local rock = paths.rock_dir("lua-loyalty-sandbox")
  if rock and exists(rock .. "/luajit/loyalty/core.so") then cpath = rock .. "/luajit/?.so;" end
  if ver == "5.1" then cpath = cpath .. tree .. "/lib/lua/5.1/?.so;" end
  return share .. "/?.lua;" .. share .. "/?/init.lua;;", cpath .. ";;"
end

local function mktemp_dir()
  local p = io.popen("mktemp -d /tmp/loyalty-nginx.XXXXXX")
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp failed")
  return dir
end

local function capture(cmd)
  local p = io.popen(cmd)
  if not p then return nil end
  local out = p:read("*a")
  p:close()
  return out
end

-- A master started by root would run its workers as `nobody`, who cannot read a checkout under a
-- 0700 home: the workers run as the invoking user instead (the directive only matters for root).
local user_directive
local function user_line()
  if user_directive then return user_directive end
  local id = capture("id -u 2>/dev/null")
  if not id or tonumber(id) ~= 0 then
    user_directive = ""
  else
    local name = (capture("id -un 2>/dev/null") or ""):match("^%s*(%S+)") or "root"
    local group = (capture("id -gn 2>/dev/null") or ""):match("^%s*(%S+)") or name
    user_directive = "user " .. name .. " " .. group .. ";"
  end
  return user_directive
end
_M.user_line = user_line

local function render(opts, prefix, port)
  local lpath, cpath = default_paths()
  local http = (opts.http or ""):gsub("%${port}", tostring(port)):gsub("%${next_port}", tostring(port + 1))
                                :gsub("%${prefix}", prefix)
  local main = (opts.main or ""):gsub("%${prefix}", prefix)
  local error_log = opts.error_log or (prefix .. "/error.log")
  -- In the foreground, fd 2 is the start-up file and fd 3 the caller's stderr (see start).
  if opts.foreground and (error_log == "/dev/stderr" or error_log == "stderr") then error_log = "/proc/self/fd/3" end
  return table.concat({
    load_module_lines(),
    user_line(),
    "daemon " .. (opts.foreground and "off" or "on") .. ";",
    "master_process on;",
    "worker_processes " .. (opts.workers or 1) .. ";",
    "pid " .. prefix .. "/nginx.pid;",
    "error_log " .. error_log .. " " .. (opts.log_level or "warn") .. ";",
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

-- nginx's LuaJIT must not see the caller's Lua paths (a Lua 5.4 LUA_CPATH makes it load 5.4's
-- cjson.so); lua_package_path/cpath below say everything it needs.
local CLEAN_ENV = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_1 -u LUA_CPATH_5_1 -u LUA_INIT -u LUA_INIT_5_1 "

--- One sentence naming the fix for what nginx printed when it did not start (nil: none known).
function _M.diagnose(text, port)
  text = text or ""
  if text:find("in use", 1, true) then
    if not port then return "every port tried was in use: free some ports or name one" end
    return "port " .. tostring(port) .. " is already in use: stop what listens there or choose another port"
  end
  if text:find("unknown directive \"lua_", 1, true) or text:find("unknown directive \"init_by_lua", 1, true)
     or text:find("unknown directive \"content_by_lua", 1, true) then
    return "this nginx has no Lua module: install libnginx-mod-http-lua (apt-get install libnginx-mod-http-lua)"
  end
  if text:find("undefined symbol: lua", 1, true) then
    local so = text:match("([^%s']+%.so): undefined symbol") or "a C module"
    return "nginx's LuaJIT loaded " .. so .. ", built for another Lua: keep other Lua versions' C paths"
      .. " out of lua_package_cpath"
  end
  if text:find("module 'cjson", 1, true) or text:find("cjson.so", 1, true) then
    return "nginx's LuaJIT cannot load lua-cjson: install Debian's lua-cjson (apt-get install lua-cjson)"
  end
  if text:find("module 'loyalty.core' not found", 1, true) or text:find("core.so", 1, true) then
    return "nginx's LuaJIT has no loyalty.core built for it: install the lua-loyalty-sandbox rock"
      .. " (it builds one), or run `make` in a checkout"
  end
  if text:find("module 'loyalty", 1, true) then
    return "nginx's LuaJIT cannot find the loyalty modules: reinstall lua-loyalty and lua-loyalty-sandbox"
      .. " in the same tree"
  end
  return nil
end

-- The first lines nginx printed, trimmed, for the message.
local function first_lines(text)
  local lines, seen = {}, {}
  for line in (text or ""):gmatch("[^\n]+") do
    if not seen[line] then
      seen[line] = true
      lines[#lines + 1] = line
    end
    if #lines == 3 then break end
  end
  return table.concat(lines, "; ")
end

-- nginx that cannot start is a setup problem (packages, ports, configuration): kind config.
local function start_error(message)
  return errors.config(message, "nginx")
end

local function failure(text, port)
  local why = _M.diagnose(text, port)
  local said = first_lines(text)
  if why then
    return start_error("nginx did not start: " .. why .. (said ~= "" and (" (nginx said: " .. said .. ")") or ""))
  end
  return start_error("nginx did not start: " .. (said ~= "" and said or "it printed nothing"))
end

--- Starts nginx. opts: http (string, the http{} body; "${port}", "${next_port}" (port + 1, for a
-- second listener) and "${prefix}" are substituted), main (main-context directives), port (nil: a free one), workers,
-- foreground (check the configuration, then exec in the foreground and return when nginx exits:
-- true, or nil, message [, "exited" when it ran and then failed]), lua_package_path/cpath (prepended to the in-tree
-- paths), log_level, keep_prefix.
-- Returns a Server {port, url, prefix, stop()} or nil, err (kind config; err.message is one sentence
-- naming the fix when known).
function _M.start(opts)
  assert(type(opts) == "table", "loyalty.ngx.runner.start: options table expected")
  local nginx = opts.nginx or find_nginx()
  if not nginx or not (nginx:find("/", 1, true) and exists(nginx) or run("command -v " .. shell_quote(nginx)
                                                                          .. " >/dev/null 2>&1")) then
    return nil, start_error("nginx is not installed: apt-get install nginx libnginx-mod-http-lua")
  end
  local tries = opts.port and 1 or 8
  local last_err
  for _ = 1, tries do
    local prefix = opts.prefix or mktemp_dir()
    local port = opts.port or random_port()
    -- The workers run as the invoking user (see user_line), who owns the prefix.
    for _, d in ipairs { "body", "proxy", "fastcgi", "uwsgi", "scgi" } do
      run("mkdir -p " .. shell_quote(prefix .. "/" .. d))
    end
    write_file(prefix .. "/nginx.conf", render(opts, prefix, port))
    local cmd = CLEAN_ENV .. nginx .. " -q -p " .. shell_quote(prefix) .. " -c " .. shell_quote(prefix .. "/nginx.conf")
    if opts.foreground then
      -- nginx's own start-up messages (bad configuration, init_by_lua errors, a busy port) go to
      -- a file this process reads and explains when nginx fails; its log (error_log "/dev/stderr")
      -- goes to our stderr through fd 3. nginx replaces the shell and, where setpriv exists,
      -- stops when this process dies.
      local pdeath = run("command -v setpriv >/dev/null 2>&1") and "setpriv --pdeathsig TERM " or ""
      local errf = prefix .. "/start.err"
      local ok = run("exec 3>&2; exec " .. pdeath .. cmd .. " 2>" .. shell_quote(errf))
      local text = read_file(errf) or ""
      if not opts.keep_prefix then run("rm -rf " .. shell_quote(prefix)) end
      if ok then
        if text ~= "" then io.stderr:write(text) end
        return true
      end
      if text:find("%[emerg%]") or text:find("%[error%]") or text:find("%[alert%]") then
        return nil, failure(text, port)
      end
      io.stderr:write(text)
      return nil, start_error("nginx exited with an error (its log is above)"), "exited"
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
    if not last_err:find("in use", 1, true) or opts.port then
      return nil, failure(last_err, port)
    end
  end
  return nil, failure(last_err, nil)
end

return _M

-- Starts the example storefront in a private nginx (loyalty.ngx.runner), against the sandbox
-- or any CRM. As a script (`lua5.4 examples/openresty/launch.lua [--transport proxy|thread]`) it starts
-- the sandbox too and serves until Enter. As a module (dofile) it is what specs and bench use.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
if not package.path:find("/lua/?/init.lua", 1, true) then
  -- run as a script from a checkout: find the in-tree modules
  package.path = here .. "/../../lua/?.lua;" .. here .. "/../../lua/?/init.lua;" .. package.path
end
local runner = require "loyalty.ngx.runner"

local _M = {}

local function example_dir()
  local src = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "examples/openresty"
  if src:sub(1, 1) ~= "/" then
    local root = runner.tree_root()
    if root then src = root .. "/examples/openresty" end
  end
  return src
end
_M.example_dir = example_dir

local function fill(template, values)
  return (template:gsub("%${([%w_]+)}", function(name)
    local v = values[name]
    if v == nil then return nil end -- ${port}/${prefix}: left for loyalty.ngx.runner
    return tostring(v)
  end))
end

-- Pass-through names: the storefront reads them when set in the caller's environment.
local ENV_NAMES = { "LOYALTY_BASE_URL", "LOYALTY_CLIENT_KEY", "LOYALTY_CLIENT_SECRET", "LOYALTY_STORE_CONF",
                    "LOYALTY_RULES", "LOYALTY_ROOT", "LOYALTY_USERNAME", "LOYALTY_PASSWORD",
                    "LOYALTY_STORE_TWO_PASSWORD", "LOYALTY_OUTBOX_INTERVAL", "LOYALTY_RULES_LAST_GOOD" }

--- start{crm_url, transport = "socket"|"proxy"|"thread", workers = 1, threads = 16, env = {NAME = value},
-- port, log_level, http_extra (more http{} directives, e.g. extra locations), server_extra}
-- -> loyalty.ngx.runner server {url, port, prefix, stop(), error_log()} | nil, message
function _M.start(opts)
  opts = opts or {}
  local dir = example_dir()
  local crm_url = opts.crm_url or os.getenv("LOYALTY_BASE_URL") or "http://127.0.0.1:8089"
  local crm_address = crm_url:match("^https?://([^/]+)")
  if not crm_address then return nil, "crm_url must be http(s)://host[:port]" end
  if not crm_address:find(":%d+$") then
    crm_address = crm_address .. (crm_url:match("^https") and ":443" or ":80")
  end
  local env = { LOYALTY_BASE_URL = crm_url }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local lines = {}
  for _, name in ipairs(ENV_NAMES) do
    if env[name] then
      lines[#lines + 1] = string.format('env "%s=%s";', name, env[name])
    else
      lines[#lines + 1] = "env " .. name .. ";"
    end
  end
  local values = {
    example_dir = dir, crm_address = crm_address, transport = opts.transport or "socket",
    threads = opts.threads or 16, env = table.concat(lines, "\n"),
  }
  local http = fill(assert(runner.read_file(dir .. "/nginx.conf")), values)
  if opts.server_extra then
    -- before the last closing brace: the server block's end
    http = http:gsub("}%s*$", opts.server_extra .. "\n}\n")
  end
  if opts.http_extra then http = http .. "\n" .. opts.http_extra end
  return runner.start {
    http = http, main = fill(assert(runner.read_file(dir .. "/main.conf")), values),
    workers = opts.workers or 1, port = opts.port, log_level = opts.log_level,
    lua_package_path = dir .. "/?.lua;",
    worker_connections = opts.worker_connections or 4096,
  }
end

if arg and arg[0] and arg[0]:match("launch%.lua$") then
  local transport = "socket"
  for i = 1, #arg do
    if arg[i] == "--transport" then transport = arg[i + 1] end
  end
  local sandbox = require("loyalty.sandbox")
  local sb = assert(sandbox.start {})
  local srv, err = _M.start { crm_url = sb.url, transport = transport, workers = 2 }
  if not srv then
    sb:stop()
    error(err)
  end
  print("sandbox:    " .. sb.url)
  print("storefront: " .. srv.url .. "   (transport " .. transport .. ")")
  print("try:  curl '" .. srv.url .. "/loyalty/summary?user=tom'")
  print("      curl '" .. srv.url .. "/loyalty/header?user=tom'")
  print("Press Enter to stop.")
  io.read("*l")
  srv:stop()
  sb:stop()
end

return _M

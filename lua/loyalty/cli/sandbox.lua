-- `loyalty sandbox [--port N] [--latency MS] [--seed FILE] [--workers N]`: runs the sandbox in the
-- foreground until SIGTERM/SIGINT (nginx handles the signals and exits cleanly).
local sandbox = require("loyalty.sandbox")

local _M = {}

local USAGE = [[
usage: loyalty sandbox [--port N] [--latency MS] [--seed FILE] [--workers N]

Runs the local Capillary-compatible sandbox on 127.0.0.1 in the foreground; Ctrl-C stops it.
  --port N       listen port (default 8089)
  --latency MS   added latency per Capillary request, in milliseconds (default 0)
  --seed FILE    seed JSON (default examples/sandbox-seed.json; see docs/sandbox.md)
  --workers N    nginx worker processes (default 1)
]]

local NUMERIC = { ["--port"] = "port", ["--latency"] = "latency_ms", ["--workers"] = "workers" }

local function parse(args)
  local opts = { port = sandbox.DEFAULT_PORT }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then return nil, nil, true end
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    if not name then name, value = a, args[i + 1]; i = i + 1 end
    if NUMERIC[name] then
      local n = tonumber(value)
      if not n or n < 0 or n ~= math.floor(n) then return nil, name .. " needs a whole number" end
      opts[NUMERIC[name]] = n
    elseif name == "--seed" then
      if not value then return nil, "--seed needs a file" end
      opts.seed = value
    else
      return nil, "unknown option " .. tostring(a)
    end
    i = i + 1
  end
  return opts
end

local function seed_credentials(path)
  local text = require("loyalty.nginx_runner").read_file(path or sandbox.default_seed_path())
  local seed = text and require("cjson.safe").decode(text)
  return type(seed) == "table" and seed or {}
end

function _M.main(args)
  local opts, err, help = parse(args or {})
  if help then io.stdout:write(USAGE) return 0 end
  if not opts then
    io.stderr:write("loyalty sandbox: " .. err .. "\n" .. USAGE)
    return 2
  end
  local seed = seed_credentials(opts.seed)
  local url = "http://127.0.0.1:" .. opts.port
  io.stdout:write("Capillary sandbox on " .. url .. " (Ctrl-C to stop)\n")
  for _, t in ipairs(seed.tills or {}) do
    io.stdout:write(string.format("  Basic till   %s / %s\n", tostring(t.code), tostring(t.password)))
  end
  for _, c in ipairs(seed.oauth_clients or {}) do
    io.stdout:write(string.format("  OAuth client %s / %s (ttl %ds)\n", tostring(c.key), tostring(c.secret),
      math.floor(tonumber(c.ttl_seconds) or 0)))
  end
  io.stdout:write("  admin        " .. url .. "/sandbox/state, /sandbox/reset, /sandbox/faults\n")
  io.stdout:flush()
  opts.foreground = true
  opts.error_log = "/dev/stderr"
  local started = os.time()
  local ok = sandbox.start(opts)
  -- Ctrl-C / SIGTERM reach nginx through the process group and it exits by signal, which the
  -- runner reports as failure: an exit after the first seconds is a stop, an immediate one is an
  -- error at start-up (nginx printed why on stderr, e.g. the port is in use).
  if not ok and os.time() - started < 5 then
    io.stderr:write("loyalty sandbox: nginx could not start (see above)\n")
    return 1
  end
  io.stdout:write("sandbox stopped\n")
  return 0
end

return _M

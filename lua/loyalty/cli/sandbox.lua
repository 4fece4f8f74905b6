-- `loyalty sandbox` (or `loyalty-sandbox`): runs the sandbox in the foreground until SIGTERM/SIGINT
-- (nginx handles the signals and exits cleanly).
local cli = require("loyalty.cli")

local _M = {}

function _M.configure(cmd)
  local sandbox = require("loyalty.sandbox")
  cmd:description([[
Runs the local sandbox CRM (Capillary v1.1, v2 and OAuth; CRM.COM) on 127.0.0.1 in the foreground,
hosted by a private nginx; Ctrl-C stops it. It prints the seed's till logins and OAuth clients.]])
  cmd:option("--port", "Listen port."):convert(cli.number("--port", true))
    :default(tostring(sandbox.DEFAULT_PORT)):argname("<n>")
  cmd:option("--latency", "Added latency per Capillary request, in milliseconds.")
    :convert(cli.number("--latency", true))
    :default("0"):argname("<ms>")
  cmd:option("--seed", "Seed JSON (default: the installed examples/sandbox-seed.json; see docs/sandbox.md).")
    :argname("<file>")
  cmd:option("--workers", "nginx worker processes."):convert(cli.number("--workers", true)):default("1")
    :argname("<n>")
  cmd:option("--crmcom-release", "CRM.COM release the sandbox speaks (R4, R16, R17...; default: the seed's).")
    :argname("<release>")
end

local function seed_credentials(path)
  local f = io.open(path, "rb")
  if not f then return {} end
  local seed = require("cjson.safe").decode(f:read("*a"))
  f:close()
  return type(seed) == "table" and seed or {}
end

-- A port someone else listens on: say so before nginx does it in a log line.
local function port_busy(port)
  local ok, socket = pcall(require, "socket")
  if not ok then return false end
  local s = socket.tcp()
  local bound = s:bind("127.0.0.1", port)
  s:close()
  return not bound
end

function _M.run(a, out, err)
  local sandbox = require("loyalty.sandbox")
  local seed_path = cli.resolve(a.seed, err, "lua-loyalty-sandbox")
  if not seed_path then
    local p, perr = sandbox.default_seed_path()
    if not p then err:write("loyalty sandbox: ", perr, "\n") return 1 end
    seed_path = p
  end
  local f = io.open(seed_path, "rb")
  if not f then
    err:write("loyalty sandbox: cannot read the seed ", seed_path, ": pass --seed FILE",
              a.seed and "" or " or reinstall lua-loyalty-sandbox", "\n")
    return 1
  end
  f:close()
  if port_busy(a.port) then
    err:write("loyalty sandbox: port ", a.port, " is already in use (another sandbox?): stop it or pass --port N\n")
    return 1
  end
  local seed = seed_credentials(seed_path)
  local url = "http://127.0.0.1:" .. a.port
  out:write("Sandbox CRM on " .. url .. " (Ctrl-C to stop)\n")
  for _, t in ipairs(seed.tills or {}) do
    out:write(string.format("  Basic till   %s / %s\n", tostring(t.code), tostring(t.password)))
  end
  for _, c in ipairs(seed.oauth_clients or {}) do
    out:write(string.format("  OAuth client %s / %s (ttl %ds)\n", tostring(c.key), tostring(c.secret),
      math.floor(tonumber(c.ttl_seconds) or 0)))
  end
  out:write("  admin        " .. url .. "/sandbox/state, /sandbox/reset, /sandbox/faults\n")
  if out.flush then out:flush() end
  local started = os.time()
  local ok, serr, how = sandbox.start { port = a.port, latency_ms = a.latency, seed = seed_path, workers = a.workers,
                                   crmcom_release = a.crmcom_release, foreground = true, error_log = "/dev/stderr" }
  -- Ctrl-C / SIGTERM reach nginx through the process group; an exit by signal after it ran
  -- for a while is a stop, not an error.
  if not ok and not (how == "exited" and os.time() - started >= 5) then
    err:write("loyalty sandbox: ", tostring(serr), "\n")
    return 1
  end
  out:write("sandbox stopped\n")
  return 0
end

function _M.main(argv, out, err) return cli.main_for("sandbox", argv, out, err) end

return _M

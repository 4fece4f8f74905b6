-- `loyalty call`: try one endpoint or typed operation and print the reply as JSON.
-- Credentials come from the environment, never the command line (where `ps` would show them).
local cli = require "loyalty.cli"

local _M = {}

local PROVIDERS = { "capillary", "crmcom" }

function _M.configure(cmd)
  cmd:description([[
Calls one CRM endpoint and prints the (normalised) reply body as JSON, with the request id.
  loyalty call [options] OPERATION [key=value ...]
  loyalty call [options] METHOD PATH [key=value ...]
OPERATION is a typed operation such as customer_get or points_isredeemable; key=value pairs become
its argument table (nested keys with dots: customer.mobile=9198...). With METHOD PATH, pairs become
the query (GET) or the JSON body (other methods).]])
  cmd:epilog([[
Credentials come from the environment, never the command line:
  Capillary: LOYALTY_USERNAME / LOYALTY_PASSWORD (a till), or LOYALTY_CLIENT_KEY / LOYALTY_CLIENT_SECRET
  CRM.COM:   LOYALTY_USERNAME / LOYALTY_PASSWORD with --organisation, or LOYALTY_API_KEY
Against `make sandbox`: LOYALTY_USERNAME=store.server LOYALTY_PASSWORD=server123 (the seed's till).]])
  cmd:argument("what", "OPERATION [key=value ...] or METHOD PATH [key=value ...]"):args("+")
  cmd:option("--base-url", "CRM base URL (default $LOYALTY_BASE_URL, else http://127.0.0.1:8089).")
    :argname("<url>")
  cmd:option("--provider", "The CRM."):choices(PROVIDERS):default("capillary")
  cmd:option("--environment", "Capillary instead of --base-url: production, dev or stage (with --cluster).")
  cmd:option("--cluster", "Capillary cluster: india, apac2, sea, eu, us, ushc, china.")
  cmd:option("--organisation", "CRM.COM: the organisation a username/password logs in to "
    .. "(default $LOYALTY_ORGANISATION).")
  cmd:option("--unit", "CRM.COM: the business unit to log in to (optional).")
  cmd:option("--timeout-ms", "Deadline of the call in milliseconds (default 10000).")
    :convert(cli.number("--timeout-ms", true))
    :argname("<ms>")
  cmd:flag("--v2", "Capillary, with METHOD PATH: read the reply as a v2 envelope (default: v1.1 for "
    .. "/v1.1/ paths).")
end

local function set_path(t, key, value)
  local head, rest = key:match("^([^.]+)%.(.+)$")
  if head then
    if type(t[head]) ~= "table" then t[head] = {} end
    return set_path(t[head], rest, value)
  end
  if value == "true" then value = true elseif value == "false" then value = false end
  t[key] = value
end

-- Where `loyalty call` takes each client setting from, for a config error naming one.
local HOW = {
  organisation = "pass --organisation ORG (or set LOYALTY_ORGANISATION)",
  username = "set LOYALTY_USERNAME and LOYALTY_PASSWORD",
  password = "set LOYALTY_PASSWORD",
  base_url = "pass --base-url URL (or set LOYALTY_BASE_URL)",
  cluster = "pass --environment and --cluster, or --base-url",
  environment = "pass --environment and --cluster, or --base-url",
}

local METHODS = { GET = true, POST = true, PUT = true, DELETE = true, PATCH = true }

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

-- The client options for this provider, from the flags and the environment.
local function client_options(a)
  local o = { provider = a.provider, timeout_ms = a.timeout_ms or 10000 }
  if a.environment or a.cluster then
    o.environment, o.cluster = a.environment, a.cluster
  else
    o.base_url = a.base_url or env("LOYALTY_BASE_URL") or "http://127.0.0.1:8089"
  end
  o.username, o.password = env("LOYALTY_USERNAME"), env("LOYALTY_PASSWORD")
  if a.provider == "crmcom" then
    o.organisation = a.organisation or env("LOYALTY_ORGANISATION")
    o.unit = a.unit
    o.api_key = env("LOYALTY_API_KEY")
  else
    o.client_key, o.client_secret = env("LOYALTY_CLIENT_KEY"), env("LOYALTY_CLIENT_SECRET")
  end
  return o
end

function _M.run(a, out, err)
  local loyalty = require "loyalty"
  local core = require "loyalty.core"
  local positional, argt = {}, {}
  for _, w in ipairs(a.what) do
    local k, v = w:match("^([^=]+)=(.*)$")
    if k and #positional > 0 then set_path(argt, k, v) else positional[#positional + 1] = w end
  end
  if a.provider ~= "crmcom" and (a.organisation or a.unit) then
    err:write("loyalty call: --organisation and --unit are for --provider crmcom\n")
    return 2
  end
  if #positional > 2 or (#positional == 2 and not METHODS[positional[1]:upper()]) then
    err:write("loyalty call: expected OPERATION or METHOD PATH before the key=value pairs, got '",
              table.concat(positional, " "), "' (see --help)\n")
    return 2
  end
  local client, cerr = loyalty.client(client_options(a))
  if not client then
    local how = HOW[cerr.key]
    err:write(tostring(cerr), how and ("; " .. how) or "", "\n")
    return 1
  end
  local result, rerr
  if #positional == 2 then
    local method, path = positional[1]:upper(), positional[2]
    local spec = { method = method, path = path }
    if a.provider ~= "crmcom" then spec.version = (not a.v2 and path:find("^/v1%.1/")) and "v1.1" or "v2" end
    if method == "GET" then spec.query = argt else spec.json = argt end
    result, rerr = client:request(spec)
  else
    local name = positional[1]
    local op = client[name]
    if type(op) ~= "function" or not client.provider.ops[name] then
      client:close()
      local known = {}
      for k in pairs(client.provider.ops) do known[#known + 1] = k end
      table.sort(known)
      err:write("loyalty call: unknown operation '", name, "' for ", a.provider, " (one of: ",
                table.concat(known, ", "), ")\n")
      return 2
    end
    -- key=value pairs are strings: an operation that raises on them (a wrong type for one of
    -- its arguments) is a usage mistake, said in one line.
    local ok, r1, r2 = pcall(op, client, argt)
    if not ok then
      client:close()
      err:write("loyalty call: ", name, ": ", (tostring(r1):gsub("^[^:]*:%d+: ", "")), "\n")
      return 2
    end
    result, rerr = r1, r2
  end
  client:close()
  if not result then
    err:write(tostring(rerr), "\n")
    return 1
  end
  out:write(core.json_encode(result.body), "\n")
  err:write("request id: ", tostring(result.request_id), ", attempts: ", tostring(result.attempts), "\n")
  return 0
end

function _M.main(argv, out, err) return cli.main_for("call", argv, out, err) end

return _M

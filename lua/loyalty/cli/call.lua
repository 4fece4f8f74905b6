-- `loyalty call`: try one endpoint or typed operation and print the reply as JSON.
-- Credentials come from the environment, never the command line (where `ps` would show them).
local cli = require "loyalty.cli"
local providers = require "loyalty.providers"
local timeouts = require "loyalty.timeouts"

local _M = {}

-- Each provider's `loyalty call` options (its cli.options): the flag -> the providers that take it.
local function cli_options()
  local by_flag, order = {}, {}
  for _, p in ipairs(providers.all()) do
    for _, o in ipairs(p.cli.options) do
      local entry = by_flag[o.flag]
      if not entry then
        entry = { option = o, owners = {} }
        by_flag[o.flag] = entry
        order[#order + 1] = o.flag
      end
      entry.owners[p.name] = true
    end
  end
  return by_flag, order
end

-- "--environment" -> "environment" (argparse's name for the parsed value).
local function arg_name(flag) return (flag:gsub("^%-%-", ""):gsub("%-", "_")) end

function _M.configure(cmd)
  cmd:description([[
Calls one CRM endpoint and prints the (normalised) reply body as JSON, with the request id.
  loyalty call [options] OPERATION [key=value ...]
  loyalty call [options] METHOD PATH [key=value ...]
OPERATION is a typed operation such as customer_get or points_isredeemable; key=value pairs become
its argument table (nested keys with dots: customer.mobile=9198...). With METHOD PATH, pairs become
the query (GET) or the JSON body (other methods).]])
  local lines = { "Credentials come from the environment, never the command line:" }
  for _, p in ipairs(providers.all()) do
    lines[#lines + 1] = ("  %-10s %s"):format(p.title .. ":", p.cli.credentials)
  end
  lines[#lines + 1] = "Against `make sandbox`: LOYALTY_USERNAME=store.server LOYALTY_PASSWORD=server123 " ..
    "(the seed's till)."
  cmd:epilog(table.concat(lines, "\n"))
  cmd:argument("what", "OPERATION [key=value ...] or METHOD PATH [key=value ...]"):args("+")
  cmd:option("--base-url", "CRM base URL (default $LOYALTY_BASE_URL, else http://127.0.0.1:8089).")
    :argname("<url>")
  cmd:option("--provider", "The CRM."):choices(providers.names()):default(providers.DEFAULT)
  local by_flag, order = cli_options()
  for _, flag in ipairs(order) do
    local o = by_flag[flag].option
    if o.flag_only then cmd:flag(flag, o.help) else cmd:option(flag, o.help) end
  end
  cmd:option("--timeout-ms", "Deadline of the call in milliseconds (default " .. timeouts.request_ms .. ").")
    :convert(cli.number("--timeout-ms", true))
    :argname("<ms>")
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

-- Where `loyalty call` takes each client setting from, for a config error naming one (the
-- provider's cli.how adds its own).
local HOW = {
  username = "set LOYALTY_USERNAME and LOYALTY_PASSWORD",
  password = "set LOYALTY_PASSWORD",
  base_url = "pass --base-url URL (or set LOYALTY_BASE_URL)",
}

local METHODS = { GET = true, POST = true, PUT = true, DELETE = true, PATCH = true }

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

-- The client options for this provider, from the flags and the environment.
local function client_options(a, provider)
  local o = { provider = a.provider, timeout_ms = a.timeout_ms or timeouts.request_ms }
  local host_given = false
  for _, opt in ipairs(provider.cli.options) do
    local v = a[arg_name(opt.flag)]
    if v == nil and opt.env then v = env(opt.env) end
    if opt.key then o[opt.key] = v end
    if v ~= nil and opt.instead_of_base_url then host_given = true end
  end
  if host_given then
    o.base_url = nil
  else
    o.base_url = a.base_url or env("LOYALTY_BASE_URL") or "http://127.0.0.1:8089"
  end
  o.username, o.password = env("LOYALTY_USERNAME"), env("LOYALTY_PASSWORD")
  for key, var in pairs(provider.cli.env or {}) do o[key] = env(var) end
  return o
end

-- The first flag given that only other providers take: "--a and --b are for --provider x".
local function foreign_flags(a, provider)
  local by_flag = cli_options()
  for _, entry in pairs(by_flag) do
    local given = a[arg_name(entry.option.flag)]
    if given ~= nil and given ~= false and not entry.owners[provider.name] then
      local owner = next(entry.owners)
      local flags = {}
      for _, o in ipairs(assert(providers.get(owner)).cli.options) do
        if not (by_flag[o.flag].owners[provider.name]) then flags[#flags + 1] = o.flag end
      end
      local text = #flags > 1 and (table.concat(flags, ", ", 1, #flags - 1) .. " and " .. flags[#flags]) or flags[1]
      return text .. (#flags > 1 and " are" or " is") .. " for --provider " .. owner
    end
  end
end

function _M.run(a, out, err)
  local loyalty = require "loyalty"
  local core = require "loyalty.core"
  local positional, argt = {}, {}
  for _, w in ipairs(a.what) do
    local k, v = w:match("^([^=]+)=(.*)$")
    if k and #positional > 0 then set_path(argt, k, v) else positional[#positional + 1] = w end
  end
  local provider = assert(providers.get(a.provider))
  local foreign = foreign_flags(a, provider)
  if foreign then
    err:write("loyalty call: ", foreign, "\n")
    return 2
  end
  if #positional > 2 or (#positional == 2 and not METHODS[positional[1]:upper()]) then
    err:write("loyalty call: expected OPERATION or METHOD PATH before the key=value pairs, got '",
              table.concat(positional, " "), "' (see --help)\n")
    return 2
  end
  local client, cerr = loyalty.client(client_options(a, provider))
  if not client then
    local how = (provider.cli.how or {})[cerr.key] or HOW[cerr.key]
    err:write(tostring(cerr), how and ("; " .. how) or "", "\n")
    return 1
  end
  local result, rerr
  if #positional == 2 then
    local method, path = positional[1]:upper(), positional[2]
    local spec = { method = method, path = path }
    if method == "GET" then spec.query = argt else spec.json = argt end
    if provider.cli.raw_spec then spec = provider.cli.raw_spec(spec, a) end
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

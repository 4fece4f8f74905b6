-- `loyalty call`: try one endpoint or typed operation and print the reply as JSON.
local core = require "loyalty.core"
local loyalty = require "loyalty"

local _M = {}

local HELP = [[
usage: loyalty call [options] OPERATION [key=value ...]
       loyalty call [options] METHOD PATH [key=value ...]

Calls one CRM endpoint and prints the (normalised) reply body as JSON, with the request id.
OPERATION is a typed operation such as customer_get, points_isredeemable; key=value pairs
become its argument table (nested keys with dots: customer.mobile=9198...). With METHOD PATH,
pairs become the query (GET) or the JSON body (other methods).

options:
  --base-url URL       CRM base URL (default $LOYALTY_BASE_URL, else http://127.0.0.1:8089)
  --provider NAME      capillary (default)
  --v2                 with METHOD PATH: read the reply as a v2 envelope (default v1.1 for /v1.1/ paths)
  -h, --help           this text
credentials come from the environment, never the command line:
  LOYALTY_USERNAME / LOYALTY_PASSWORD  or  LOYALTY_CLIENT_KEY / LOYALTY_CLIENT_SECRET
]]

local function set_path(t, key, value)
  local head, rest = key:match("^([^.]+)%.(.+)$")
  if head then
    t[head] = t[head] or {}
    return set_path(t[head], rest, value)
  end
  if value == "true" then value = true elseif value == "false" then value = false end
  t[key] = value
end

function _M.main(args)
  local opts = { base_url = os.getenv("LOYALTY_BASE_URL") or "http://127.0.0.1:8089" }
  local positional, pairs_ = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then
      io.stdout:write(HELP)
      return 0
    elseif a == "--base-url" or a == "--provider" then
      i = i + 1
      opts[a == "--base-url" and "base_url" or "provider"] = args[i]
    elseif a == "--v2" then
      opts.v2 = true
    elseif a:find("=", 1, true) then
      local k, v = a:match("^([^=]+)=(.*)$")
      pairs_[#pairs_ + 1] = { k, v }
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if #positional == 0 then
    io.stderr:write(HELP)
    return 2
  end
  local v2 = opts.v2
  opts.v2 = nil
  -- A variable set but empty (LOYALTY_PASSWORD=) counts as unset.
  local function env(name)
    local v = os.getenv(name)
    if v ~= "" then return v end
  end
  opts.username, opts.password = env("LOYALTY_USERNAME"), env("LOYALTY_PASSWORD")
  opts.client_key, opts.client_secret = env("LOYALTY_CLIENT_KEY"), env("LOYALTY_CLIENT_SECRET")
  local client, err = loyalty.client(opts)
  if not client then
    io.stderr:write(tostring(err), "\n")
    return 1
  end
  local argt = {}
  for _, kv in ipairs(pairs_) do set_path(argt, kv[1], kv[2]) end

  local result
  if #positional >= 2 then
    local method, path = positional[1]:upper(), positional[2]
    local spec = { method = method, path = path, version = (not v2 and path:find("^/v1%.1/")) and "v1.1" or "v2" }
    if method == "GET" then spec.query = argt else spec.json = argt end
    result, err = client:request(spec)
  else
    local op = client[positional[1]]
    if type(op) ~= "function" or not client.provider.ops[positional[1]] then
      io.stderr:write("loyalty call: unknown operation '", positional[1], "'\n")
      return 2
    end
    result, err = op(client, argt)
  end
  client:close()
  if not result then
    io.stderr:write(tostring(err), "\n")
    return 1
  end
  io.stdout:write(core.json_encode(result.body), "\n")
  io.stderr:write("request id: ", tostring(result.request_id), ", attempts: ", tostring(result.attempts), "\n")
  return 0
end

return _M

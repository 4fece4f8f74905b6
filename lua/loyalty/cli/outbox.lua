-- `loyalty outbox drain|status|retry`: the outbox from cron or a shell. The store settings file
-- names the outbox (its `outbox = {...}` table) and the CRM account to replay against.
local program_mod = require "loyalty.program"
local drainer = require "loyalty.outbox.drainer"

local _M = {}

local HELP = {
  main = [[
usage: loyalty outbox <drain|status|retry> [options]

  drain        replay what is due to the CRM (cron-friendly with --once)
  status       counts per state, the oldest pending entry, dead letters with reasons
  retry ID     put dead letter ID back in line

`loyalty outbox <subcommand> --help` describes each.
]],
  drain = [[
usage: loyalty outbox drain [--config store.conf.lua] [--once] [--interval SECONDS] [--quiet]

Replays due outbox entries, one customer's writes at a time and in order. With --once it drains
what is due now and exits (exit 0; 1 when the outbox cannot be read); otherwise it keeps
draining every --interval seconds (default 5) until killed.
  --config FILE    store settings with an `outbox` table (default ./store.conf.lua)
]],
  status = [[
usage: loyalty outbox status [--config store.conf.lua]

Prints entries per state (pending, delivered, dead), the oldest pending entry and the dead
letters with their last error. Exit 0; 3 when there are dead letters; 1 on a read failure.
]],
  retry = [[
usage: loyalty outbox retry ID [--config store.conf.lua]

Puts entry ID (a dead letter, or a pending entry waiting out its backoff) back in line now,
with its attempts reset. Exit 0, or 1 when there is no such entry to retry.
]],
}

local function parse(args)
  local o = { config = "store.conf.lua", interval = 5, positional = {} }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then
      o.help = true
    elseif a == "--config" then
      i = i + 1
      o.config = args[i]
    elseif a == "--once" then
      o.once = true
    elseif a == "--quiet" then
      o.quiet = true
    elseif a == "--interval" then
      i = i + 1
      o.interval = tonumber(args[i])
      if not o.interval or o.interval <= 0 then return nil, "--interval needs a positive number of seconds" end
    elseif a:sub(1, 1) == "-" then
      return nil, "unknown option " .. a
    else
      o.positional[#o.positional + 1] = a
    end
    i = i + 1
  end
  if not o.config then return nil, "--config needs a file" end
  return o
end

local function open_program(o)
  local p, err = program_mod.new(o.config)
  if not p then return nil, "loyalty outbox: " .. tostring(err) end
  if not p.outbox then
    p:close()
    return nil, "loyalty outbox: " .. o.config .. " has no `outbox` setting"
  end
  return p
end

local function when(t)
  if not t then return "-" end
  return os.date("!%Y-%m-%d %H:%M:%S", math.floor(t)) .. "Z"
end

local function describe(e)
  local p = e.payload or {}
  local what = p.number or p.redemptionId or p.mobile or p.email or ""
  return string.format("#%s %s %s %s (attempts %s, since %s)", tostring(e.id), e.kind, e.customer_key,
                       tostring(what), tostring(e.attempts), when(e.created_at))
end

local function status(o, out)
  local p, perr = open_program(o)
  if not p then return nil, perr end
  local st, err = p.outbox:status()
  p:close()
  if not st then return nil, "loyalty outbox: " .. tostring(err) end
  out:write(string.format("outbox (%s): %d pending, %d delivered, %d dead\n", st.backend,
                          st.counts.pending or 0, st.counts.delivered or 0, st.counts.dead or 0))
  if st.oldest_pending then
    out:write("oldest pending: " .. describe(st.oldest_pending) .. "\n")
    if st.oldest_pending.last_error then out:write("  last error: " .. st.oldest_pending.last_error .. "\n") end
  end
  if #st.dead > 0 then
    out:write("dead letters (retry with `loyalty outbox retry ID`):\n")
    for _, e in ipairs(st.dead) do
      out:write("  " .. describe(e) .. "\n    " .. tostring(e.last_error) .. "\n")
    end
    return 3
  end
  return 0
end

local function drain(o, out)
  local p, perr = open_program(o)
  if not p then return nil, perr end
  local s = p.settings.outbox
  local opts = { max_attempts = s.max_attempts, backoff_base_s = s.backoff_base_s,
                 backoff_max_s = s.backoff_max_s, lease_s = s.lease_s }
  if not o.quiet then
    opts.log = function(what, e, detail)
      if what ~= "delivered" then out:write(what .. ": " .. describe(e) .. ": " .. tostring(detail) .. "\n") end
    end
  end
  local core = require "loyalty.core"
  repeat
    local t, err = drainer.run(p, p.outbox, opts)
    if not t then
      p:close()
      return nil, "loyalty outbox: " .. tostring(err)
    end
    if not o.quiet and t.claimed > 0 then
      out:write(string.format("drained: %d delivered, %d to retry, %d dead\n", t.delivered, t.failed, t.dead))
    end
    if not o.once then core.sleep(o.interval) end
  until o.once
  p:close()
  return 0
end

local function retry(o, out)
  local id = tonumber(o.positional[1])
  if not id then return nil, "loyalty outbox retry: entry ID expected" end
  local p, perr = open_program(o)
  if not p then return nil, perr end
  local ok, err = p.outbox:retry(id)
  p:close()
  if ok == nil then return nil, "loyalty outbox: " .. tostring(err) end
  if not ok then return nil, "loyalty outbox retry: no dead or pending entry #" .. id end
  out:write("entry #" .. id .. " is back in line\n")
  return 0
end

local SUB = { drain = drain, status = status, retry = retry }

--- main(args) -> exit code
function _M.main(args, out, errout)
  out, errout = out or io.stdout, errout or io.stderr
  local sub = args[1]
  if not sub or sub == "-h" or sub == "--help" or sub == "help" then
    out:write(HELP.main)
    return sub and 0 or 2
  end
  local fn = SUB[sub]
  if not fn then
    errout:write("loyalty outbox: unknown subcommand '" .. tostring(sub) .. "'\n" .. HELP.main)
    return 2
  end
  local rest = {}
  for i = 2, #args do rest[#rest + 1] = args[i] end
  local o, perr = parse(rest)
  if not o then
    errout:write("loyalty outbox " .. sub .. ": " .. perr .. "\n" .. HELP[sub])
    return 2
  end
  if o.help then
    out:write(HELP[sub])
    return 0
  end
  local code, err = fn(o, out)
  if not code then
    errout:write(err .. "\n")
    return 1
  end
  return code
end

return _M

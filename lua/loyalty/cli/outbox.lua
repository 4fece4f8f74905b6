-- `loyalty outbox drain|status|retry`: the outbox from cron or a shell. The store settings file
-- names the outbox (its `outbox = {...}` table) and the CRM account to replay against.
local cli = require "loyalty.cli"

local _M = {}

local CONFIG_HELP = "Store settings with an `outbox` table (an example: "
  .. "\"$(loyalty --examples-dir)/outbox.conf.lua\")."

function _M.configure(cmd, state)
  cmd:command_target("outbox_command")
  local drain = cli.command(cmd, state, "drain", [[
Replays due outbox entries, one customer's writes at a time and in order, then purges delivered
entries older than the outbox's keep_delivered_s (default 3 days). With --once it drains what is
due now and exits (exit 0; 1 when the outbox cannot be read); otherwise it keeps draining every
--interval seconds until killed. On a terminal one status line counts delivered, failed and dead
entries and the rate; otherwise a line is printed every --every entries and at the end.]])
  drain:option("--config", CONFIG_HELP):default("store.conf.lua"):argname("<file>")
  drain:flag("--once", "Drain what is due now, then exit.")
  drain:option("--interval", "Seconds between drains without --once.")
    :convert(cli.number("--interval"))
    :default("5"):argname("<seconds>")
  drain:option("--every", "Not on a terminal: a progress line every N entries.")
    :convert(cli.number("--every", true))
    :default("100"):argname("<n>")
  drain:flag("--quiet", "Print nothing but errors.")

  local status = cli.command(cmd, state, "status", [[
Prints entries per state (pending, delivered and how long delivered ones are kept, dead), the
oldest pending entry and the dead letters with their last error. Exit 0; 3 when there are dead
letters; 1 on a read failure.]])
  status:option("--config", CONFIG_HELP):default("store.conf.lua"):argname("<file>")

  local retry = cli.command(cmd, state, "retry", [[
Puts entry ID (a dead letter, or a pending entry waiting out its backoff) back in line now, with
its attempts reset. Exit 0, or 1 when there is no such entry to retry.]])
  retry:argument("id", "The entry's id (as `loyalty outbox status` shows it).")
    :convert(cli.number("ID", true))
  retry:option("--config", CONFIG_HELP):default("store.conf.lua"):argname("<file>")
end

local function open_program(o)
  local f = io.open(o.config, "rb")
  if not f then
    return nil, "loyalty outbox: cannot read the settings file " .. o.config
      .. ": pass --config FILE (an example: \"$(loyalty --examples-dir)/outbox.conf.lua\")"
  end
  f:close()
  local p, err = require("loyalty.program").new(o.config)
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

local function duration(s)
  local d, h = s / 86400, s / 3600
  if s > 0 and d == math.floor(d) then return string.format("%d %s", d, d == 1 and "day" or "days") end
  if s > 0 and h == math.floor(h) then return string.format("%d h", h) end
  return string.format("%d s", math.floor(s))
end

local function status(o, out)
  local p, perr = open_program(o)
  if not p then return nil, perr end
  local st, err = p.outbox:status()
  p:close()
  if not st then return nil, "loyalty outbox: " .. tostring(err) end
  local kept = st.keep_delivered_s and (" (kept " .. duration(st.keep_delivered_s) .. ")") or ""
  out:write(string.format("outbox (%s): %d pending, %d delivered%s, %d dead\n", st.backend,
                          st.counts.pending or 0, st.counts.delivered or 0, kept, st.counts.dead or 0))
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

-- Progress of a drain: on a terminal one line rewritten in place (at most 10 times a second),
-- otherwise a line every `every` entries; always a last line with the totals.
local function progress(out, tty, every, clock)
  local t0 = clock()
  local n = { delivered = 0, failed = 0, dead = 0 }
  local last_draw, shown = 0, 0
  local self = {}
  local function line()
    local done = n.delivered + n.failed + n.dead
    local dt = clock() - t0
    return string.format("%d %s: %d delivered, %d to retry, %d dead (%.1f/s)", done, done == 1 and "entry" or "entries",
                         n.delivered, n.failed, n.dead, dt > 0 and done / dt or 0)
  end
  function self.entry(what)
    if n[what] then n[what] = n[what] + 1 end
    local done = n.delivered + n.failed + n.dead
    if tty then
      local now = clock()
      if now - last_draw >= 0.1 then
        last_draw = now
        out:write("\r", line(), "\027[K")
        if out.flush then out:flush() end
      end
    elseif done - shown >= every then
      shown = done
      out:write(line(), "\n")
      if out.flush then out:flush() end
    end
  end
  function self.finish()
    local done = n.delivered + n.failed + n.dead
    if tty and done > 0 then
      out:write("\r", line(), "\027[K\n")
    elseif not tty and done > 0 and done ~= shown then
      out:write(line(), "\n")
    end
    if out.flush then out:flush() end
  end
  return self
end
_M.progress = progress

local function is_terminal(out)
  if out.file ~= io.stdout then return false end
  local ok = os.execute("test -t 1")
  return ok == true or ok == 0
end

local function drain(o, out)
  if not o.interval or o.interval <= 0 then return nil, "loyalty outbox drain: --interval needs a positive number" end
  if not o.every or o.every < 1 then return nil, "loyalty outbox drain: --every needs a whole number >= 1" end
  local p, perr = open_program(o)
  if not p then return nil, perr end
  local s = p.settings.outbox
  local core = require "loyalty.core"
  local drainer = require "loyalty.outbox.drainer"
  local tty = not o.quiet and is_terminal(out)
  repeat
    local bar = not o.quiet and progress(out, tty, math.floor(o.every), core.now) or nil
    local opts = { max_attempts = s.max_attempts, backoff_base_s = s.backoff_base_s,
                   backoff_max_s = s.backoff_max_s, lease_s = s.lease_s }
    opts.log = function(what, e, detail)
      if bar then bar.entry(what) end
      if what ~= "delivered" and not o.quiet then
        if tty then out:write("\r\027[K") end
        out:write(what .. ": " .. describe(e) .. ": " .. tostring(detail) .. "\n")
      end
    end
    local t, err = drainer.run(p, p.outbox, opts)
    if bar then bar.finish() end
    if not t then
      p:close()
      return nil, "loyalty outbox: " .. tostring(err)
    end
    if not o.quiet and (t.purged or 0) > 0 then
      out:write(string.format("purged %d delivered entries older than %s\n", t.purged,
                              duration(p.outbox.keep_delivered_s or 0)))
    end
    if not o.once then core.sleep(o.interval) end
  until o.once
  p:close()
  return 0
end

local function retry(o, out)
  local id = o.id
  if not id then return nil, "loyalty outbox retry: the entry ID is a number" end
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

--- run(parsed args, out, err) -> exit code
function _M.run(a, out, err)
  a.config = cli.resolve(a.config, err)
  local code, msg = SUB[a.outbox_command](a, out)
  if not code then
    err:write(msg .. "\n")
    return 1
  end
  return code
end

--- main(argv [, out, err]) -> exit code: `loyalty outbox argv...`.
function _M.main(argv, out, err)
  return cli.main_for("outbox", argv, out, err)
end

return _M

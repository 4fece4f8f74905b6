-- Programs on a sandbox, each with a fresh SQLite outbox file, for the outbox, program and fault
-- specs. new() returns ctx {sb, dir, start, stop, reset, use, path, settings, program}.
-- ctx.use() registers lazy_setup(ctx.start), lazy_teardown(ctx.stop) and before_each(ctx.reset)
-- in the describe block it is called from.
local loyalty = require "loyalty"
local support = require "support.sandbox"
local proc = require "outbox.helpers.proc"

local _M = {}

local function merged(base, extra)
  for k, v in pairs(extra or {}) do base[k] = v end
  return base
end

function _M.new()
  local ctx, n = {}, 0
  function ctx.start()
    ctx.sb = support.start()
    ctx.dir = proc.tmpdir()
  end
  function ctx.stop()
    if ctx.sb then ctx.sb:stop() end
    if ctx.dir then proc.rmdir(ctx.dir) end
  end
  function ctx.reset() assert(ctx.sb:reset()) end
  function ctx.use()
    local busted = require "busted" -- a required module sees busted's API only through it
    busted.lazy_setup(ctx.start)
    busted.lazy_teardown(ctx.stop)
    busted.before_each(ctx.reset)
  end

  -- A fresh file name in the spec's directory.
  function ctx.path(prefix)
    n = n + 1
    return ctx.dir .. "/" .. (prefix or "p") .. n .. ".db"
  end

  -- Settings for a program on the sandbox's till: the crm table with crm_extra merged in, an
  -- SQLite outbox in a fresh file with outbox_extra merged in (none when outbox_extra is false),
  -- then settings_extra merged in.
  function ctx.settings(outbox_extra, crm_extra, settings_extra)
    local s = {
      crm = merged({ base_url = ctx.sb.url, username = "store.server", password = "server123",
                     sleep = function() end, max_attempts = 2 }, crm_extra),
    }
    if outbox_extra ~= false then s.outbox = merged({ backend = "sqlite", path = ctx.path() }, outbox_extra) end
    return merged(s, settings_extra)
  end

  function ctx.program(outbox_extra, crm_extra, settings_extra)
    return assert(loyalty.program(ctx.settings(outbox_extra, crm_extra, settings_extra)))
  end
  return ctx
end

return _M

-- Programs with an SQLite outbox on a sandbox, for the outbox specs. new() returns ctx {sb, dir,
-- start, stop, reset, program(outbox_extra, crm_extra, settings_extra)}; a spec registers
-- lazy_setup(ctx.start), lazy_teardown(ctx.stop) and before_each(ctx.reset).
local loyalty = require "loyalty"
local support = require "support.sandbox"
local proc = require "outbox.helpers.proc"

local _M = {}

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

  -- A program on the sandbox with a fresh outbox file; each *_extra table is merged in.
  function ctx.program(outbox_extra, crm_extra, settings_extra)
    n = n + 1
    local ob = { backend = "sqlite", path = ctx.dir .. "/p" .. n .. ".db" }
    for k, v in pairs(outbox_extra or {}) do ob[k] = v end
    local crm = { base_url = ctx.sb.url, username = "store.server", password = "server123",
                  sleep = function() end, max_attempts = 2 }
    for k, v in pairs(crm_extra or {}) do crm[k] = v end
    local s = { crm = crm, outbox = ob }
    for k, v in pairs(settings_extra or {}) do s[k] = v end
    return assert(loyalty.program(s))
  end
  return ctx
end

return _M

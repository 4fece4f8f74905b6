-- `loyalty rules drift --orders LOG [DIR] [--tolerance N]`, from parsed options.
-- opts: orders, dir (re-estimate with these rules instead of the logged estimates), tolerance, progress, out, err.
-- Returns the exit code: 0 no drift, 1 drift found (or DIR does not load), 2 the log cannot be read.
local _M = {}

local rules = require("loyalty.rules")
local drift = require("loyalty.rules.drift")
local replay_cli = require("loyalty.cli.rules_replay")

local function writer(f) return function(s) f:write(s) end end

function _M.run(opts)
  local out = opts.out or writer(io.stdout)
  local err = opts.err or writer(io.stderr)
  local rs
  if opts.dir then
    local report
    report, rs = rules.check(opts.dir)
    if not rs then
      for _, e in ipairs(report.errors) do out("error: " .. e.message .. "\n") end
      return 1
    end
    if not rs.compiled.earn then out("error: " .. opts.dir .. " has no earn.lua\n") return 1 end
  end
  local show = opts.progress
  if show == nil then show = replay_cli.stderr_is_terminal() end
  local args = { orders = opts.orders, rules = rs, tolerance = opts.tolerance,
    progress = show and replay_cli.progress_writer(err) or nil }
  local s, derr = drift.run(args)
  if not s then err("loyalty rules drift: " .. derr .. "\n") return 2 end
  out(drift.text(s, args))
  return s.drifting > 0 and 1 or 0
end

return _M

-- `loyalty rules replay DIR --orders LOG [--against OLD_DIR] [--top N]`, from parsed options.
-- opts: dir, orders, against, top (number), progress (true/false; default: when stderr is a terminal),
-- out, err (writers). Returns the exit code: 0 replayed, 1 a rule set does not load or the log holds no order,
-- 2 the log cannot be read.
local _M = {}

local rules = require("loyalty.rules")
local replay = require("loyalty.rules.replay")

local function writer(f) return function(s) f:write(s) end end

-- lua-posix where installed (Debian ships it for 5.1 only), else the shell's `test -t 2` (stderr is inherited).
local function stderr_is_terminal()
  local ok, unistd = pcall(require, "posix.unistd")
  if ok and type(unistd.isatty) == "function" then return unistd.isatty(2) == 1 end
  local a = os.execute("test -t 2")
  return a == true or a == 0
end
_M.stderr_is_terminal = stderr_is_terminal

function _M.progress_writer(err)
  local last = -1
  return function(done, total)
    local pct = total > 0 and math.floor(done / total * 100) or 100
    if pct == last then return end
    last = pct
    err(string.format("\r  %3d%% of the order log read", pct) .. (pct >= 100 and "\n" or ""))
  end
end

local function load(dir, out)
  local report, rs = rules.check(dir)
  if not rs then
    for _, e in ipairs(report.errors) do out("error: " .. e.message .. "\n") end
    out(dir .. " does not load; nothing was replayed\n")
  end
  return rs
end

function _M.run(opts)
  local out = opts.out or writer(io.stdout)
  local err = opts.err or writer(io.stderr)
  local new_rs = load(opts.dir, out)
  if not new_rs then return 1 end
  if not new_rs.compiled.earn then out("error: " .. opts.dir .. " has no earn.lua, so there is nothing to replay\n")
    return 1 end
  local old_rs
  if opts.against then
    old_rs = load(opts.against, out)
    if not old_rs then return 1 end
    if not old_rs.compiled.earn then out("error: " .. opts.against .. " has no earn.lua\n") return 1 end
  end
  local show_progress = opts.progress
  if show_progress == nil then show_progress = stderr_is_terminal() end
  local args = { new = new_rs, old = old_rs, orders = opts.orders, top = opts.top,
    progress = show_progress and _M.progress_writer(err) or nil }
  local s, rerr = replay.run(args)
  if not s then err("loyalty rules replay: " .. rerr .. "\n") return 2 end
  out(replay.text(s, args))
  if s.orders == 0 then
    out("no order could be read from " .. opts.orders .. "; nothing was replayed\n")
    return 1
  end
  return 0
end

return _M

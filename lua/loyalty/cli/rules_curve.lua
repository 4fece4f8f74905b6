-- `loyalty rules curve DIR [--svg FILE] [--sizes A,B,...] [--category C | --sku S]`, from parsed options.
-- opts: dir, svg (path; default rules-curve.svg), sizes (list of numbers), category, sku, out, err.
-- Returns the exit code: 0 printed and written, 1 the rules do not load or evaluate, 2 the SVG cannot be written.
local _M = {}

local rules = require("loyalty.rules")
local curve = require("loyalty.rules.curve")
local svg = require("loyalty.rules.svg")

local function writer(f) return function(s) f:write(s) end end

-- The chart of a curve.compute result.
function _M.chart(rs, c)
  local series = {}
  for ti, t in ipairs(c.tiers) do
    local earn, max = {}, {}
    for si, size in ipairs(c.sizes) do
      local r = c.rows[ti][si]
      if r.earn then earn[#earn + 1] = { size, r.earn } end
      if r.max then max[#max + 1] = { size, r.max } end
    end
    local label = curve.tier_label(t)
    if #earn > 0 then series[#series + 1] = { label = label .. ": earned", colour = ti, points = earn } end
    if #max > 0 then
      series[#series + 1] = { label = label .. ": most payable", colour = ti, dashed = true, points = max }
    end
  end
  return svg.chart(series, { title = "Points earned and most points payable by cart size (rule set " .. rs.hash .. ")",
    x_label = "cart size (" .. rs.currency .. ", log scale)", y_label = "points" })
end

function _M.run(opts)
  local out = opts.out or writer(io.stdout)
  local err = opts.err or writer(io.stderr)
  local rs, lerr = rules.load(opts.dir)
  if not rs then out("error: " .. lerr.message .. "\n") return 1 end
  local c, cerr = curve.compute(rs, { sizes = opts.sizes, category = opts.category, sku = opts.sku })
  if not c then out("error: " .. tostring(cerr.message or cerr) .. "\n") return 1 end
  out(curve.text(rs, c))
  local path = opts.svg or "rules-curve.svg"
  local f, ferr = io.open(path, "wb")
  if not f then err("loyalty rules curve: cannot write " .. path .. ": " .. tostring(ferr) .. "\n") return 2 end
  f:write(_M.chart(rs, c))
  f:close()
  out("chart written to " .. path .. "\n")
  return 0
end

return _M

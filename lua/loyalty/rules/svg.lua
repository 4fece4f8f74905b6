-- A hand-written SVG line chart (no dependency): cart size on a log scale, points on a linear scale, one colour
-- per tier; earn as a solid line, the most points payable as a dashed one.
local _M = {}

local format, concat, log, floor = string.format, table.concat, math.log, math.floor

local COLOURS = { "#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#6a4c93", "#00798c", "#8d6346", "#555555" }

local function esc(s)
  return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;"))
end

local function log10(x) return log(x) / log(10) end

-- A round step for about `n` ticks up to `max`.
local function nice_step(max, n)
  if max <= 0 then return 1 end
  local raw = max / n
  local mag = 10 ^ floor(log10(raw))
  for _, m in ipairs({ 1, 2, 2.5, 5, 10 }) do
    if raw <= m * mag then return m * mag end
  end
  return 10 * mag
end

local function label_number(x)
  if x >= 1000000 and x % 100000 == 0 then return format("%gM", x / 1000000) end
  if x >= 1000 and x % 100 == 0 then return format("%gk", x / 1000) end
  return format("%g", x)
end

--[[ series: { {label, colour index, dashed, points = {{x, y}...}} }; opts: title, x_label, y_label.
Returns the SVG text. x must be > 0 (log scale). ]]
function _M.chart(series, opts)
  opts = opts or {}
  local W, H, L, R, T, B = 900, 520, 80, 220, 50, 60
  local pw, ph = W - L - R, H - T - B
  local xmin, xmax, ymax = math.huge, 0, 0
  for _, s in ipairs(series) do
    for _, p in ipairs(s.points) do
      if p[1] > 0 then
        if p[1] < xmin then xmin = p[1] end
        if p[1] > xmax then xmax = p[1] end
      end
      if p[2] > ymax then ymax = p[2] end
    end
  end
  if xmax == 0 then xmin, xmax = 1, 10 end
  if xmin == xmax then xmax = xmin * 10 end
  local step = nice_step(ymax, 6)
  ymax = math.max(step, math.ceil(ymax / step) * step)
  local lx0, lx1 = log10(xmin), log10(xmax)
  local function X(x) return L + (log10(x) - lx0) / (lx1 - lx0) * pw end
  local function Y(y) return T + ph - y / ymax * ph end
  local o = {}
  local function w(...) o[#o + 1] = format(...) end
  w('<?xml version="1.0" encoding="UTF-8"?>')
  w('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" ' ..
    'font-family="sans-serif" font-size="12">', W, H, W, H)
  w('<rect width="%d" height="%d" fill="white"/>', W, H)
  if opts.title then w('<text x="%d" y="28" font-size="16" font-weight="bold">%s</text>', L, esc(opts.title)) end
  -- grid and axes
  for v = 0, ymax + step / 2, step do
    w('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>', L, Y(v), L + pw, Y(v))
    w('<text x="%d" y="%.1f" text-anchor="end">%s</text>', L - 8, Y(v) + 4, esc(label_number(v)))
  end
  local d = floor(lx0)
  while 10 ^ d <= xmax * 1.0001 do
    for _, m in ipairs({ 1, 2, 5 }) do
      local x = m * 10 ^ d
      if x >= xmin * 0.9999 and x <= xmax * 1.0001 then
        w('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e5e5"/>', X(x), T, X(x), T + ph)
        w('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', X(x), T + ph + 18, esc(label_number(x)))
      end
    end
    d = d + 1
  end
  w('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>', L, T + ph, L + pw, T + ph)
  w('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>', L, T, L, T + ph)
  if opts.x_label then w('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', L + pw / 2, H - 15,
    esc(opts.x_label)) end
  if opts.y_label then
    w('<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">%s</text>', T + ph / 2, T + ph / 2,
      esc(opts.y_label))
  end
  -- series and legend
  for i, s in ipairs(series) do
    local pts = {}
    for _, p in ipairs(s.points) do
      if p[1] > 0 then pts[#pts + 1] = format("%.1f,%.1f", X(p[1]), Y(p[2])) end
    end
    local colour = COLOURS[((s.colour or i) - 1) % #COLOURS + 1]
    local dash = s.dashed and ' stroke-dasharray="6 4"' or ""
    w('<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"><title>%s</title></polyline>', colour, dash,
      concat(pts, " "), esc(s.label))
    local ly = T + 10 + (i - 1) * 20
    w('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>', L + pw + 20, ly, L + pw + 50, ly,
      colour, dash)
    w('<text x="%d" y="%d">%s</text>', L + pw + 58, ly + 4, esc(s.label))
  end
  w("</svg>")
  return concat(o, "\n") .. "\n"
end

return _M

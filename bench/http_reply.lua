-- Why the cosocket transport frames replies in C: core.http_reply against the same work in plain
-- Lua (head end, status, lowercase headers, Content-Length body; the Lua one does not even do
-- chunked or gzip) on a 1 KB customer/get-sized reply. Interleaved rounds; best and median.
--   luajit bench/http_reply.lua   |   lua5.4 bench/http_reply.lua   (from the checkout root)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (jit and "build/5.1/?.so;" or "build/5.4/?.so;") .. package.cpath
local core = require "loyalty.core"
local body = '{"response":{"status":{"success":true,"code":200,"message":"SUCCESS"},"customers":{"customer":[{' ..
             string.rep('"field":"value","points":1234,', 30) .. '"last":true}]}}}'
local raw = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 08:42:44 GMT\r\n" ..
            "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n" ..
            "Connection: keep-alive\r\n\r\n" .. body
local find, sub, lower, gmatch, match = string.find, string.sub, string.lower, string.gmatch, string.match
-- the same work in plain Lua: head end, status line, headers (lowercase), Content-Length framing
local function lua_parse(buf)
  local e = find(buf, "\r\n\r\n", 1, true)
  if not e then return false end
  local status = tonumber(match(buf, "^HTTP/1%.[01] (%d%d%d)"))
  if not status then return nil, "bad status" end
  local h = {}
  for name, value in gmatch(sub(buf, 1, e + 1), "\n([^:\r\n]+):[ \t]*([^\r\n]-)[ \t]*\r") do
    name = lower(name)
    local old = h[name]
    h[name] = old and (old .. ", " .. value) or value
  end
  local len = tonumber(h["content-length"])
  if not len then return nil, "no length" end
  if #buf - (e + 3) < len then return false end
  return status, h, sub(buf, e + 4, e + 3 + len), h.connection ~= "close"
end
assert(lua_parse(raw) == 200)
local N, ROUNDS = 100000, 7
local cases = { { "C core.http_reply", core.http_reply, {} }, { "plain Lua", lua_parse, {} } }
for _ = 1, ROUNDS do
  for _, c in ipairs(cases) do
    local f = c[2]
    local t0 = os.clock()
    for _ = 1, N do f(raw) end
    c[3][#c[3] + 1] = (os.clock() - t0) / N * 1e6
  end
end
print(string.format("reply framing, %d-byte reply (%s):", #raw, jit and jit.version or _VERSION))
for _, c in ipairs(cases) do
  table.sort(c[3])
  print(string.format("  %-20s best %.2f us, median %.2f us", c[1], c[3][1], c[3][math.ceil(ROUNDS / 2)]))
end
print(string.format("  plain Lua / C (median): %.1fx", cases[2][3][math.ceil(ROUNDS / 2)] /
                    cases[1][3][math.ceil(ROUNDS / 2)]))

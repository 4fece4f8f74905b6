-- The tiny CRM the third provider speaks to: members with a points balance, orders that earn a
-- point per whole unit of money, redemptions and their reversal. JSON over HTTP/1.1 (one request a
-- connection). State lives in DIR/state.json, so the server can be stopped and started again.
-- Run as `lua5.4 spec/providers/tiny/server.lua PORT DIR`; specs use start() below.
if arg and arg[0] and arg[0]:match("tiny/server%.lua$") and arg[1] then
  local socket = require "socket"
  local cjson = require "cjson"
  local port, dir = tonumber(arg[1]), arg[2]
  local KEY = "shop-till:tiny-secret-1"
  local POINT_VALUE = 0.01

  local function load()
    local f = io.open(dir .. "/state.json")
    if not f then
      return { members = { ["5550001"] = { id = "5550001", name = "Ada", points = 1000 } }, orders = {},
               redemptions = {}, next_id = 1 }
    end
    local s = cjson.decode(f:read("*a"))
    f:close()
    return s
  end
  local function save(s)
    local f = assert(io.open(dir .. "/state.json.tmp", "w"))
    f:write(cjson.encode(s))
    f:close()
    assert(os.rename(dir .. "/state.json.tmp", dir .. "/state.json"))
  end

  local function fail(status, code, message)
    return status, { ok = false, error = { code = code, message = message } }
  end

  local function handle(s, method, path, body, key)
    if key ~= KEY then return fail(401, "BAD_KEY", "unknown shop key") end
    local id = path:match("^/members/([%w]+)$")
    if method == "GET" and id then
      local m = s.members[id]
      if not m then return fail(404, "NO_MEMBER", "no member " .. id) end
      return 200, { ok = true, member = m, point_value = POINT_VALUE }
    end
    if method == "POST" and path == "/orders" then
      local m = s.members[tostring(body.member)]
      if not m then return fail(404, "NO_MEMBER", "no member " .. tostring(body.member)) end
      if s.orders[tostring(body.order_id)] then return fail(409, "DUPLICATE_ORDER", "order already booked") end
      local earned = math.floor(tonumber(body.total) or 0)
      m.points = m.points + earned
      s.orders[tostring(body.order_id)] = { id = body.order_id, member = m.id, earned = earned, shop = body.shop }
      return 200, { ok = true, order = { id = body.order_id, points_earned = earned, balance = m.points } }
    end
    local order = path:match("^/orders/([%w%-_]+)$")
    if method == "GET" and order then
      local o = s.orders[order]
      if not o then return fail(404, "NO_ORDER", "no order " .. order) end
      return 200, { ok = true, order = o }
    end
    if method == "POST" and path == "/redemptions" then
      local m = s.members[tostring(body.member)]
      if not m then return fail(404, "NO_MEMBER", "no member") end
      local known = s.redemptions[tostring(body.reference)]
      if known then return 200, { ok = true, redemption = known } end -- the reference is its key
      local points = tonumber(body.points) or 0
      if points <= 0 or points > m.points then return fail(422, "INSUFFICIENT", "not enough points") end
      m.points = m.points - points
      local r = { id = string.format("R%d", s.next_id), points = points, value = points * POINT_VALUE,
                  balance = m.points, member = m.id }
      s.next_id = s.next_id + 1
      s.redemptions[tostring(body.reference)] = r
      return 200, { ok = true, redemption = r }
    end
    local rid = path:match("^/redemptions/([%w]+)/reverse$")
    if method == "POST" and rid then
      for _, r in pairs(s.redemptions) do
        if r.id == rid then
          if r.reversed then return fail(409, "ALREADY_REVERSED", "already reversed") end
          r.reversed = true
          s.members[r.member].points = s.members[r.member].points + r.points
          return 200, { ok = true, reversal = { points = r.points } }
        end
      end
      return fail(404, "NO_REDEMPTION", "no redemption " .. rid)
    end
    return fail(404, "NO_ROUTE", method .. " " .. path)
  end

  local server = assert(socket.bind("127.0.0.1", port))
  local ready = assert(io.open(dir .. "/ready", "w"))
  ready:write("ok")
  ready:close()
  local n = 0
  while true do
    local c = server:accept()
    if c then
      c:settimeout(5)
      local line = c:receive("*l") or ""
      local method, path = line:match("^(%u+) ([^ ?]+)")
      local len, key = 0, nil
      while true do
        local h = c:receive("*l")
        if not h or h == "" then break end
        local name, value = h:match("^([^:]+):%s*(.-)%s*$")
        if name and name:lower() == "content-length" then len = tonumber(value) end
        if name and name:lower() == "x-tiny-key" then key = value end
      end
      local raw = len > 0 and c:receive(len) or nil
      local ok, body = pcall(cjson.decode, raw or "{}")
      local s = load()
      local status, reply = handle(s, method, path or "/", ok and body or {}, key)
      save(s)
      n = n + 1
      local text = cjson.encode(reply)
      c:send(table.concat({ "HTTP/1.1 " .. status .. " X", "Connection: close", "Content-Type: application/json",
                            "X-Tiny-Request: T" .. n, "Content-Length: " .. #text }, "\r\n") .. "\r\n\r\n" .. text)
      c:close()
    end
  end
end

local _M = {}

--- start([dir]) -> server {url, dir, state(), stop(), restart()}; the same dir keeps the state.
function _M.start(dir)
  local proc = require "outbox.helpers.proc"
  local socket = require "socket"
  dir = dir or proc.tmpdir()
  local port = proc.free_port()
  local here = debug.getinfo(1, "S").source:sub(2)
  local s = { url = "http://127.0.0.1:" .. port, port = port, dir = dir }
  local pid
  function s.start()
    os.remove(dir .. "/ready")
    pid = proc.spawn({ "lua5.4", here, tostring(port), dir }, dir .. "/log")
    local deadline = socket.gettime() + 10
    while not io.open(dir .. "/ready") do
      if socket.gettime() > deadline or not proc.alive(pid) then
        proc.stop(pid)
        error("tiny server did not start: " .. proc.read(dir .. "/log"))
      end
      socket.sleep(0.02)
    end
  end
  --- Stops the process; the state stays for start().
  function s.down() proc.stop(pid) end
  function s.state() return require("cjson").decode(proc.read(dir .. "/state.json")) end
  function s.stop()
    proc.stop(pid)
    proc.rmdir(dir)
  end
  s.start()
  return s
end

return _M

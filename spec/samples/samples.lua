-- Reading the documented samples and running the replay server (spec/samples/server.lua).
-- A sample file starts with "# key: value" header lines (source, status, header), then one blank
-- line, then the sample itself, byte for byte as the provider documents it.
local _M = {}

local DIR = "spec/samples/"
_M.DIR = DIR

--- file (relative to spec/samples/) -> { source, status, headers, body, meta }
function _M.read(file)
  local f = assert(io.open(DIR .. file, "rb"))
  local text = f:read("*a")
  f:close()
  local meta, headers, status = {}, {}, 200
  local pos = 1
  while true do
    local line, nxt = text:match("^([^\n]*)\n()", pos)
    if not line then break end
    pos = nxt
    if line == "" then break end
    local k, v = line:match("^#%s*([%w_-]+):%s*(.*)$")
    assert(k, file .. ": header lines look like '# key: value', then a blank line")
    if k == "status" then
      status = tonumber(v)
    elseif k == "header" then
      local hk, hv = v:match("^([^:]+):%s*(.*)$")
      headers[hk] = hv
    else
      meta[k] = meta[k] and (meta[k] .. " " .. v) or v
    end
  end
  return { source = meta.source, status = status, headers = headers, body = text:sub(pos), meta = meta }
end

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local Server = {}
Server.__index = Server

--- start(routes) with routes = { {method, path, file}, ... }: the server on a free 127.0.0.1 port.
function _M.start(routes)
  local p = assert(io.popen("mktemp -d /tmp/loyalty-samples.XXXXXX"))
  local dir = p:read("*l")
  p:close()
  local rf = assert(io.open(dir .. "/routes", "w"))
  for _, r in ipairs(routes) do rf:write(r[1], " ", r[2], " ", r[3], "\n") end
  rf:close()
  local cmd = "lua5.4 spec/samples/server.lua " .. sh(dir .. "/routes") .. " " .. sh(dir .. "/log") .. " " ..
              sh(dir .. "/port") .. " >" .. sh(dir .. "/stderr") .. " 2>&1 & echo $!"
  p = assert(io.popen(cmd))
  local pid = tonumber(p:read("*l"))
  p:close()
  local self = setmetatable({ dir = dir, pid = pid }, Server)
  local socket = require "socket"
  for _ = 1, 500 do
    local f = io.open(dir .. "/port")
    if f then
      self.port = tonumber(f:read("*a"))
      f:close()
      break
    end
    socket.sleep(0.01)
  end
  if not self.port then
    local err = self:stderr()
    self:stop()
    error("sample server did not start: " .. err)
  end
  self.url = "http://127.0.0.1:" .. self.port
  return self
end

function Server:stderr()
  local f = io.open(self.dir .. "/stderr")
  local s = f and f:read("*a") or ""
  if f then f:close() end
  return s
end

--- The requests received so far, oldest first: { method, path, query, headers (lower-case names), body }.
function Server:requests()
  local cjson = require "cjson"
  local out = {}
  local f = io.open(self.dir .. "/log")
  if not f then return out end
  for line in f:lines() do out[#out + 1] = cjson.decode(line) end
  f:close()
  return out
end

function Server:last()
  local all = self:requests()
  return all[#all]
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  if self.pid then
    local pid = math.floor(self.pid)
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    local socket = require "socket"
    for _ = 1, 200 do -- gone, or a zombie its shell has not reaped yet
      local f = io.open("/proc/" .. pid .. "/stat")
      local stat = f and f:read("*l") or ""
      if f then f:close() end
      if not f or stat:match("^%d+ %b() Z") then break end
      socket.sleep(0.01)
    end
  end
  if self.dir and self.dir:match("^/tmp/loyalty%-samples%.") then os.execute("rm -rf " .. sh(self.dir)) end
end

--- A query string -> table (values URL-decoded).
function _M.query(q)
  local out = {}
  for k, v in (q or ""):gmatch("([^&=]+)=?([^&]*)") do
    local function dec(s)
      return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    out[dec(k)] = dec(v)
  end
  return out
end

return _M

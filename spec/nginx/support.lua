-- Helpers for the nginx specs: start the example storefront, run curl in the background, fire
-- concurrent requests. Every process started here is waited for or stopped by the caller.
local runner = require "loyalty.ngx.runner"
local cjson = require "cjson.safe"

local _M = {}

local root = runner.tree_root() or "."
_M.root = root
_M.launch = dofile(root .. "/examples/openresty/launch.lua")

local quote = runner.shell_quote

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/loyalty-nginx-spec.XXXXXX")
  local dir = p:read("*l")
  p:close()
  return dir
end

--- Fires the GET requests all at once (one curl process each) and waits for all of them.
-- Returns an array of {status, body, json, worker} (worker: the X-Worker header, when set).
function _M.concurrent_get(urls, headers)
  local dir = tmpdir()
  local h = ""
  for k, v in pairs(headers or {}) do h = h .. " -H " .. quote(k .. ": " .. v) end
  local parts = {}
  for i, url in ipairs(urls) do
    parts[#parts + 1] = string.format("curl -s -m 30 %s -D %s -o %s %s &", h, quote(dir .. "/h" .. i),
      quote(dir .. "/b" .. i), quote(url))
  end
  parts[#parts + 1] = "wait"
  runner.run(table.concat(parts, "\n"))
  local out = {}
  for i = 1, #urls do
    local head = runner.read_file(dir .. "/h" .. i) or ""
    local body = runner.read_file(dir .. "/b" .. i) or ""
    out[i] = {
      status = tonumber(head:match("^HTTP/%S+ (%d+)")), body = body, json = cjson.decode(body),
      worker = head:match("\n[Xx]%-[Ww]orker: *(%d+)"),
    }
  end
  runner.run("rm -rf " .. quote(dir))
  return out
end

local Background = {}
Background.__index = Background

--- Starts `curl url` in the background; :finished() tells whether it has returned yet.
function _M.background_get(url)
  local dir = tmpdir()
  local self = setmetatable({ dir = dir }, Background)
  runner.run(string.format("(curl -s -m 30 -D %s -o %s -w '%%{http_code}' %s > %s; touch %s) >/dev/null 2>&1 &",
    quote(dir .. "/head"), quote(dir .. "/body"), quote(url), quote(dir .. "/status"), quote(dir .. "/done")))
  return self
end

function Background:finished()
  return runner.read_file(self.dir .. "/done") ~= nil
end

--- Waits (at most `limit` seconds) for the request; returns status, body, headers (lowercase names).
function Background:wait(limit)
  local tries = math.floor((limit or 30) / 0.05)
  for _ = 1, tries do
    if self:finished() then break end
    runner.sleep(0.05)
  end
  local status = tonumber(runner.read_file(self.dir .. "/status") or "")
  local body = runner.read_file(self.dir .. "/body")
  local headers = {}
  for name, value in (runner.read_file(self.dir .. "/head") or ""):gmatch("([%w%-]+):%s*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  return status, body, headers
end

function Background:cleanup()
  self:wait(30)
  runner.run("rm -rf " .. quote(self.dir))
end

--- Polls fn() every 20 ms until it returns true (at most `limit` seconds); returns its last value.
function _M.eventually(fn, limit)
  local v
  for _ = 1, math.floor((limit or 10) / 0.02) do
    v = fn()
    if v then return v end
    runner.sleep(0.02)
  end
  return v
end

--- Starts the sandbox and the example storefront against it (opts as launch.start, crm_url filled
-- in); raises if either fails, after stopping what it started. Returns sb, srv.
function _M.start_storefront(opts, sandbox_opts)
  local sb = require("support.sandbox").start(sandbox_opts)
  local o = { crm_url = sb.url }
  for k, v in pairs(opts) do o[k] = v end
  local srv, err = _M.launch.start(o)
  if not srv then
    sb:stop()
    error(err, 2)
  end
  return sb, srv
end

--- Stops what start_storefront started (either may be nil).
function _M.stop_storefront(sb, srv)
  if srv then srv:stop() end
  if sb then sb:stop() end
end

return _M

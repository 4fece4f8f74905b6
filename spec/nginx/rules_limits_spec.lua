-- In OpenResty a hostile rule file costs only its own request's time limit: with one nginx worker, a
-- cheap location asked while a hostile evaluation runs on that worker answers within the rules' time
-- limit plus a small slack, the hostile request gets the limit's error, and the worker keeps serving.
local http = require "support.http"
local sandbox = require "support.sandbox"
local support = require "nginx.support"
local H = require "rules.helper"
local core = require "loyalty.core"

local TIME_LIMIT_MS = 200
-- What a cheap request may take on top of the time limit: curl start-up and the shared machine.
local SLACK_S = 0.5

local SERVER_EXTRA = [[
    location = /rules/earn { content_by_lua_block {
        local rules = require "loyalty.rules"
        local rs, err = rules.load(ngx.var.arg_dir, { time_limit_ms = ]] .. TIME_LIMIT_MS .. [[,
          instruction_limit = 1e15 })
        if not rs then ngx.say("load error ", err.message) return end
        local res
        res, err = rs:earn({ tier = "GOLD", points = 0 },
          { currency = "INR", lines = { { sku = "A", qty = 1, price = 1000, categories = { "x" } } } })
        ngx.say(res and ("points " .. res.points) or ("error " .. err.message))
    } }
]]

local HOSTILE = {
  loop = "while true do end",
  pattern = "local s = ('x'):upper() .. line.sku for i = 1, 13 do s = s .. s end return s:find('.-.-.-.-b') and 1",
  memory = "local s = 'x' for i = 1, 40 do s = s .. s end return 1",
  recursion = "local function f() return f() end return f()",
}

describe("rules limits inside one nginx worker", function()
  local sb, srv
  local dirs = {}

  lazy_setup(function()
    for name, body in pairs(HOSTILE) do dirs[name] = H.bonus_dir(body) end
    dirs.good = H.bonus_dir("return 2, 'double'")
    sb = sandbox.start()
    local err
    srv, err = support.launch.start { crm_url = sb.url, workers = 1, server_extra = SERVER_EXTRA }
    assert(srv, err)
    assert.equal("points 20", assert(http.get(srv.url .. "/rules/earn?dir=" .. dirs.good)).body:match("[^\n]+"))
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
    H.cleanup()
  end)

  for _, name in ipairs({ "loop", "pattern", "memory", "recursion" }) do
    it("a " .. name .. " costs /ping at most the time limit, and the worker keeps serving", function()
      local pid = assert(http.get(srv.url .. "/ping")).body
      local bg = support.background_get(srv.url .. "/rules/earn?dir=" .. dirs[name])
      core.sleep(0.05)   -- let the hostile request reach the worker first
      local t0 = core.now()
      local ping = assert(http.get(srv.url .. "/ping"))
      local waited = core.now() - t0
      local status, body = bg:wait(30)
      bg:cleanup()
      assert.equal(200, ping.status)
      assert.equal(pid, ping.body)            -- same worker: it was not restarted
      assert.truthy(waited < TIME_LIMIT_MS / 1000 + SLACK_S, ("/ping waited %.3f s"):format(waited))
      assert.equal(200, status)
      assert.truthy(body:find("^error the rules ") or body:find("^error string.find"), body)
      if name == "loop" then assert.truthy(body:find("ran longer than " .. TIME_LIMIT_MS .. " ms", 1, true), body) end
      assert.equal("points 20", assert(http.get(srv.url .. "/rules/earn?dir=" .. dirs.good)).body:match("[^\n]+"))
    end)
  end
end)

-- loyalty.env inside a real nginx: the phase it reports, whether that phase may yield (content
-- and timers may; init_worker may not), and that env.sleep in a request leaves the worker free
-- to serve others while a plain-Lua sleep would hold it.
local runner = require "loyalty.ngx.runner"
local http = require "support.http"
local support = require "nginx.support"
local cjson = require "cjson.safe"

local HTTP = [[
lua_shared_dict env_seen 1m;
init_worker_by_lua_block {
  local env = require "loyalty.env"
  local seen = ngx.shared.env_seen
  -- init_worker cannot yield: env.sleep must fall back to a short blocking sleep, not raise
  local slept = pcall(env.sleep, 0.001)
  seen:set("init_worker", require("cjson.safe").encode {
    phase = env.phase(), can_yield = env.can_yield(), tcp = env.tcp() ~= nil, slept = slept,
  })
  ngx.timer.at(0, function()
    seen:set("timer", require("cjson.safe").encode {
      phase = env.phase(), can_yield = env.can_yield(), tcp = env.tcp() ~= nil,
    })
  end)
}
server {
  listen 127.0.0.1:${port};
  add_header X-Sent-At $msec always;
  location = /env { content_by_lua_block {
    local env = require "loyalty.env"
    ngx.say(require("cjson.safe").encode {
      in_nginx = env.in_nginx, phase = env.phase(), can_yield = env.can_yield(), tcp = env.tcp() ~= nil,
      pid_matches = env.worker_pid() == ngx.worker.pid(), time_ms = env.time_ms(), wall = env.wall_time(),
      init_worker = ngx.shared.env_seen:get("init_worker"), timer = ngx.shared.env_seen:get("timer"),
    })
  } }
  location = /sleep { content_by_lua_block {
    require("loyalty.env").sleep(1)
    ngx.say("slept")
  } }
  location = /ping { content_by_lua_block { ngx.say("pong") } }
}
]]

describe("loyalty.env inside nginx", function()
  local srv

  lazy_setup(function()
    local err
    srv, err = runner.start { workers = 1, http = HTTP }
    assert(srv, err)
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  local function env_report()
    local r = assert(http.get(srv.url .. "/env"))
    assert.equal(200, r.status, r.body)
    return assert(cjson.decode(r.body))
  end

  it("reports the content phase, where it may yield and use cosockets", function()
    local e = env_report()
    assert.is_true(e.in_nginx)
    assert.equal("content", e.phase)
    assert.is_true(e.can_yield)
    assert.is_true(e.tcp)
    assert.is_true(e.pid_matches)
    assert.is_true(math.abs(e.time_ms / 1000 - os.time()) < 5)
    assert.is_true(math.abs(e.wall - os.time()) < 5)
  end)

  it("says init_worker cannot yield (sleep blocks there, no cosocket) and a timer can", function()
    local e = support.eventually(function()
      local r = env_report()
      return r.timer and r
    end)
    assert.truthy(e, "the timer never ran")
    local iw, timer = assert(cjson.decode(e.init_worker)), assert(cjson.decode(e.timer))
    assert.same({ phase = "init_worker", can_yield = false, tcp = false, slept = true }, iw)
    assert.same({ phase = "timer", can_yield = true, tcp = true }, timer)
  end)

  it("sleeps without holding the worker: another request is served meanwhile", function()
    local bg = support.background_get(srv.url .. "/sleep")
    finally(function() bg:cleanup() end)
    runner.sleep(0.2) -- the sleeping request has reached the only worker
    local ping = assert(http.get(srv.url .. "/ping"))
    local sleeper_done = bg:finished()
    local status, body, headers = bg:wait(10)
    assert.equal(200, ping.status)
    assert.equal(200, status)
    assert.equal("slept\n", body)
    assert.is_false(sleeper_done)
    assert.is_true(tonumber(ping.headers["x-sent-at"]) < tonumber(headers["x-sent-at"]))
  end)
end)

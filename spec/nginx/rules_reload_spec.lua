-- The example storefront in a real nginx while analysts edit its rules: an accepted edit is
-- saved, a rejected one is logged once with file and line and never reaches shoppers, and new
-- workers (nginx reload, restart) start from the last good rule set. Also: no request path
-- ever starts a process.
local runner = require "loyalty.ngx.runner"
local http = require "support.http"
local support = require "nginx.support"

local quote = runner.shell_quote

local function mktemp()
  local p = io.popen("mktemp -d /tmp/loyalty-rules-reload.XXXXXX")
  local dir = p:read("*l")
  p:close()
  runner.run("chmod 755 " .. quote(dir)) -- nginx workers may run as another user
  return dir
end

local function edit(path, from, to)
  local text = assert(runner.read_file(path))
  local replaced, n = text:gsub(from, to)
  assert(n == 1, "pattern not found in " .. path)
  local f = assert(io.open(path, "wb"))
  f:write(replaced)
  f:close()
end

local function worker_pids(srv)
  local p = io.popen("pgrep -P " .. srv:pid())
  local pids = {}
  for pid in p:lines() do pids[#pids + 1] = pid end
  p:close()
  table.sort(pids)
  return table.concat(pids, " ")
end

-- SIGHUP: nginx re-reads its configuration and replaces every worker.
local function reload(srv)
  local before = worker_pids(srv)
  assert(runner.run("kill -HUP " .. srv:pid()))
  assert(support.eventually(function()
    local now = worker_pids(srv)
    return now ~= "" and now ~= before and #now == #before
  end, 20), "nginx did not replace its workers")
end

local function count(text, needle)
  local n, from = 0, 1
  while true do
    local a, b = text:find(needle, from, true)
    if not a then return n end
    n, from = n + 1, b + 1
  end
end

describe("storefront rules in a running nginx", function()
  local tmp, rules_dir, saved, sb, srv

  local function start(opts)
    opts = opts or {}
    local env = { LOYALTY_RULES = rules_dir, LOYALTY_RULES_LAST_GOOD = opts.no_last_good and "" or saved }
    sb, srv = support.start_storefront { workers = opts.workers or 2, env = env, log_level = "info",
                                         server_extra = opts.server_extra }
  end

  before_each(function()
    tmp = mktemp()
    rules_dir, saved = tmp .. "/rules", tmp .. "/state/rules"
    assert(runner.run("cp -r " .. quote(support.root .. "/examples/rules") .. " " .. quote(rules_dir)))
    assert(runner.run("chmod -R a+rwX " .. quote(tmp)))
  end)

  after_each(function()
    support.stop_storefront(sb, srv)
    sb, srv = nil, nil
    runner.run("rm -rf " .. quote(tmp))
  end)

  local function summary()
    local r = assert(http.get(srv.url .. "/loyalty/summary", { ["X-Demo-User"] = "tom" }))
    return r
  end

  it("keeps serving the last good rules across a bad edit, a reload and a restart", function()
    start()
    local r = summary()
    assert.equal(200, r.status, r.body)
    assert.equal(200, r.json.min)
    assert.truthy(runner.read_file(saved .. "/current"), "the accepted rule set was not saved")

    -- a good edit is taken by the running workers (checked every second) and saved
    edit(rules_dir .. "/redemption.lua", "min_points  = 200", "min_points  = 100")
    edit(rules_dir .. "/fixtures/silver_below_minimum.lua",
         'redemption = { allowed = false, points = 0, reason = "at least 200 are needed" },',
         "redemption = { allowed = true, points = 150 },")
    edit(rules_dir .. "/fixtures/gold_mixed_cart.lua", "min = 200,", "min = 100,")
    -- by both workers (each checks when a request comes after its interval): each logs
    -- rules_loaded with the new version's hash
    local first = runner.read_file(saved .. "/current"):match("^rules%-(%x+)")
    assert(support.eventually(function()
      summary()
      local h = (runner.read_file(saved .. "/current") or ""):match("^rules%-(%x+)")
      if not h or h == first then return false end
      local pids, n = {}, 0
      for pid in srv:error_log():gmatch("(%d+)#%d+: [^\n]*rules_loaded[^\n]*hash=" .. h) do
        if not pids[pid] then pids[pid], n = true, n + 1 end
      end
      return n == 2
    end, 15), "the edit was not taken by both workers")
    assert.equal(100, summary().json.min)
    local pointer = runner.read_file(saved .. "/current")

    -- a bad edit: the workers keep the rules they have; reload and restart start from the saved ones
    edit(rules_dir .. "/redemption.lua", "max_points  = 5000", "max_points  = 'lots'")
    runner.sleep(1.2)
    r = summary()
    assert.equal(200, r.status, r.body)
    assert.equal(100, r.json.min)
    reload(srv)
    for _ = 1, 6 do
      r = summary()
      assert.equal(200, r.status, r.body)
      assert.equal(100, r.json.min)
    end
    assert.equal(pointer, runner.read_file(saved .. "/current"))
    local log = srv:error_log()
    assert.truthy(log:find("rules_rejected", 1, true), log)
    assert.truthy(log:find("file=redemption.lua", 1, true))
    assert.truthy(log:find("line=5", 1, true))
    -- once per worker that saw the edit: the two old workers and the two new ones, not per request
    local rejected = count(log, "rules_rejected")
    assert.is_true(rejected >= 1 and rejected <= 4, rejected .. " rejection lines")
    assert.truthy(log:find("rules_last_good", 1, true))
    assert.is_nil(log:find("writing a global", 1, true), "a global-write warning")

    -- a restart from scratch: no rule set in memory anywhere, the files still bad
    support.stop_storefront(sb, srv)
    start()
    r = summary()
    assert.equal(200, r.status, r.body)
    assert.equal(100, r.json.min)
    local header = assert(http.get(srv.url .. "/loyalty/header?user=tom"))
    assert.truthy(header.body:find("Hi Tom", 1, true), header.body)
  end)

  it("answers shoppers a stable error, and the header neutral text, when no good rule set exists", function()
    edit(rules_dir .. "/program.lua", 'rounding  = "floor"', "rounding  = (")
    start { no_last_good = true }
    local r = summary()
    assert.equal(503, r.status)
    assert.same({ kind = "unavailable", code = "loyalty_unavailable",
                  message = "Rewards are unavailable right now. Please try again later." }, r.json.error)
    assert.is_nil(r.body:find("program.lua", 1, true))
    local header = assert(http.get(srv.url .. "/loyalty/header?user=tom"))
    assert.equal(200, header.status)
    assert.truthy(header.headers["content-type"]:match("^text/html"))
    assert.truthy(header.body:find("Points unavailable", 1, true))
    assert.is_nil(header.body:find("{", 1, true))
    -- the real reason is in the error log, once per worker rather than once per request
    for _ = 1, 5 do summary() end
    local log = srv:error_log()
    assert.truthy(log:find("program.lua", 1, true), log)
    assert.is_true(count(log, "could not be made") <= 2 * 2, log)
  end)

  it("never starts a process from a request, a rules reload included", function()
    start { workers = 1, server_extra = [[
      location = /spec/instrument { content_by_lua_block {
        local dict = ngx.shared.loyalty_locks
        dict:set("spawned", 0)
        local popen, execute = io.popen, os.execute
        io.popen = function(...) dict:incr("spawned", 1) return popen(...) end
        os.execute = function(...) dict:incr("spawned", 1) return execute(...) end
        ngx.say("ok")
      } }
      location = /spec/spawned { content_by_lua_block { ngx.say(ngx.shared.loyalty_locks:get("spawned")) } }
    ]] }
    assert.equal(200, assert(http.get(srv.url .. "/spec/instrument")).status)
    assert.equal(200, summary().status)
    assert.equal(200, assert(http.get(srv.url .. "/loyalty/header?user=tom")).status)
    assert(http.post(srv.url .. "/loyalty/quote", { cart = { total = 1000, lines = {} } }, { ["X-Demo-User"] = "tom" }))
    edit(rules_dir .. "/program.lua", "\n$", "\n-- touched\n")
    runner.sleep(1.2)
    assert.equal(200, summary().status) -- this request reloads the rules
    assert.truthy(srv:error_log():find("rules_loaded", 1, true))
    edit(rules_dir .. "/redemption.lua", "max_points  = 5000", "max_points  = 'lots'")
    runner.sleep(1.2)
    assert.equal(200, summary().status) -- and this one rejects the edit
    local spawned = assert(http.get(srv.url .. "/spec/spawned"))
    assert.equal("0", spawned.body:match("%S+"))
  end)
end)

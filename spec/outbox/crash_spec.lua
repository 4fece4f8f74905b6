-- Crash tests: storefront processes (lua5.4) placing orders through the outbox and draining it
-- are killed with SIGKILL at random points, restarted, and drained to completion; the CRM must
-- then hold every order once and only once.
local support = require "support.sandbox"
local proc = require "outbox.helpers.proc"
local redis_helper = require "outbox.helpers.redis"
local outbox = require "loyalty.outbox"
local socket = require "socket"

local ROOT = os.getenv("PWD") or "."
local CHILD = ROOT .. "/spec/outbox/helpers/crash_child.lua"
local N = 45

local function child_argv(...)
  return { "env", "LUA_PATH=" .. ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
           "LUA_CPATH=" .. ROOT .. "/build/5.4/?.so;;", "lua5.4", CHILD, ... }
end

-- Waits until the child's log shows marker (or it exited). Bounded.
local function wait_for(log, marker, pid, timeout)
  local deadline = socket.gettime() + (timeout or 10)
  while socket.gettime() < deadline do
    if proc.read(log):find(marker, 1, true) then return true end
    if not proc.alive(pid) then return false end
    socket.sleep(0.005)
  end
  return false
end

describe("crash safety", function()
  local sb, dir
  local pids = {}

  local function spawn(log, ...)
    local pid = proc.spawn(child_argv(...), log)
    pids[#pids + 1] = pid
    return pid
  end

  lazy_setup(function()
    sb = support.start()
    dir = proc.tmpdir()
    math.randomseed(os.time())
  end)
  lazy_teardown(function()
    for _, pid in ipairs(pids) do proc.stop(pid) end
    if sb then sb:stop() end
    proc.rmdir(dir)
  end)
  before_each(function()
    assert(sb:reset())
    assert(sb:latency(3)) -- draining takes long enough to be interrupted
  end)
  after_each(function()
    for _, pid in ipairs(pids) do proc.stop(pid) end
    sb:latency(0)
  end)

  local function bill_counts(prefix)
    local counts = {}
    for _, t in ipairs(sb:state().transactions) do
      if t.type == "REGULAR" and t.number:sub(1, #prefix) == prefix then
        counts[t.number] = (counts[t.number] or 0) + 1
      end
    end
    return counts
  end

  local function assert_each_once(prefix)
    local counts = bill_counts(prefix)
    for i = 1, N do
      assert.equals(1, counts[prefix .. i], "order " .. prefix .. i .. " in the CRM")
    end
    local total = 0
    for _ in pairs(counts) do total = total + 1 end
    assert.equals(N, total)
  end

  local function finish(pid, log)
    assert.is_true(proc.wait(pid, 40), "child did not finish: " .. proc.read(log))
    assert.matches("drained", proc.read(log))
  end

  it("SQLite: killed while writing the outbox and while draining, every order once", function()
    local db = dir .. "/crash.db"
    local prefix = "CS-"
    local kills = 0
    -- Rounds alternate: kill during the puts, then during the drain.
    for round = 1, 6 do
      local log = dir .. "/child" .. round .. ".log"
      local pid = spawn(log, "both", sb.url, "sqlite", db, tostring(N), prefix)
      local marker = round % 2 == 1 and "placing" or "draining"
      if wait_for(log, marker, pid) then
        socket.sleep(math.random() * (marker == "placing" and 0.03 or 0.15))
        if proc.alive(pid) then
          proc.kill(pid, "KILL")
          kills = kills + 1
        end
      end
      assert.is_true(proc.wait(pid, 10))
    end
    assert.is_true(kills >= 3, "the children were killed mid-run")
    local log = dir .. "/final.log"
    finish(spawn(log, "both", sb.url, "sqlite", db, tostring(N), prefix), log)
    assert_each_once(prefix)
    local ob = assert(outbox.open { backend = "sqlite", path = db })
    local st = assert(ob:status())
    ob:close()
    assert.same({ pending = 0, delivered = N, dead = 0 }, st.counts)
  end)

  describe("Redis", function()
    local server

    lazy_setup(function() server = redis_helper.start() end)
    lazy_teardown(function() if server then server.stop() end end)

    it("two drainers at once deliver each order exactly once", function()
      local target = server.port .. ":crash:a"
      local log = dir .. "/r-place.log"
      local placer = spawn(log, "place", sb.url, "redis", target, tostring(N), "RA-")
      assert.is_true(proc.wait(placer, 20))
      assert.matches("placed", proc.read(log))
      local before = sb:state().requests["/v1.1/transaction/add"] or 0
      local a = spawn(dir .. "/ra1.log", "drain", sb.url, "redis", target, "0", "RA-")
      local b = spawn(dir .. "/ra2.log", "drain", sb.url, "redis", target, "0", "RA-")
      finish(a, dir .. "/ra1.log")
      finish(b, dir .. "/ra2.log")
      assert_each_once("RA-")
      -- No request was sent twice: the leases kept the two drainers apart.
      assert.equals(N, (sb:state().requests["/v1.1/transaction/add"] or 0) - before)
    end)

    it("a drainer killed mid-drain leaves its claims to the other, every order once", function()
      local target = server.port .. ":crash:b"
      local kills, round = 0, 0
      -- Placers killed mid-write until two were (bounded: a fast one may finish first), then two
      -- that run to the end.
      local function place(kill)
        round = round + 1
        local log = dir .. "/rb-place" .. round .. ".log"
        local placer = spawn(log, "place", sb.url, "redis", target, tostring(N), "RB-")
        if kill and wait_for(log, "placing", placer) then
          socket.sleep(math.random() * 0.02)
          if proc.alive(placer) then
            proc.kill(placer, "KILL")
            kills = kills + 1
          end
        end
        assert.is_true(proc.wait(placer, 20))
      end
      while kills < 2 and round < 8 do place(true) end
      place(false)
      place(false)
      local l1, l2 = dir .. "/rb1.log", dir .. "/rb2.log"
      local d1 = spawn(l1, "drain", sb.url, "redis", target, "0", "RB-")
      local d2 = spawn(l2, "drain", sb.url, "redis", target, "0", "RB-")
      for _ = 1, 3 do
        if wait_for(l1, "draining", d1) then
          socket.sleep(0.02 + math.random() * 0.1)
          if proc.alive(d1) then
            proc.kill(d1, "KILL")
            kills = kills + 1
          end
        end
        assert.is_true(proc.wait(d1, 10))
        l1 = dir .. "/rb1-" .. kills .. ".log"
        d1 = spawn(l1, "drain", sb.url, "redis", target, "0", "RB-")
      end
      assert.is_true(kills >= 2, "the children were killed mid-run")
      finish(d1, l1)
      finish(d2, l2)
      assert_each_once("RB-")
      local ob = assert(outbox.open { backend = "redis", host = "127.0.0.1", port = server.port, key = "crash:b" })
      local st = assert(ob:status())
      ob:close()
      assert.equals(0, st.counts.pending)
      assert.equals(0, st.counts.dead)
      assert.equals(N, st.counts.delivered)
    end)
  end)
end)

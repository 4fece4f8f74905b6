-- Storage faults degrade, they do not block or break the store: a locked SQLite outbox costs a
-- checkout at most the short busy timeout; a corrupt or unopenable outbox file lets the program
-- start and serve reads, writes that need the outbox return a storage error (logged, with the
-- order id) until the file is fixed, and `loyalty outbox status` says what is wrong.
local loyalty = require "loyalty"
local core = require "loyalty.core"
local support = require "support.sandbox"
local proc = require "outbox.helpers.proc"

local LUA = type(jit) == "table" and "luajit" or "lua5.4"
local TOM = { mobile = "919999000001", firstname = "Tom" }

local function order(id)
  return { id = id, total = 500, gross = 500, lines = { { sku = "SK-TSHIRT-M", name = "Basic Tee", qty = 1,
                                                          price = 500, amount = 500 } } }
end

describe("storage faults", function()
  local sb, dir, n = nil, nil, 0
  lazy_setup(function()
    sb = support.start()
    dir = proc.tmpdir()
  end)
  lazy_teardown(function()
    if sb then sb:stop() end
    proc.rmdir(dir)
  end)
  before_each(function() assert(sb:reset()) end)

  local function settings(path, outbox_extra, events)
    local ob = { backend = "sqlite", path = path, always = true }
    for k, v in pairs(outbox_extra or {}) do ob[k] = v end
    return {
      crm = { base_url = sb.url, username = "store.server", password = "server123", sleep = function() end },
      outbox = ob,
      log = events and function(level, event, fields) events[#events + 1] = { level, event, fields } end or nil,
    }
  end

  local function fresh(name)
    n = n + 1
    return dir .. "/" .. name .. n .. ".db"
  end

  it("a locked outbox: the checkout waits at most the short busy timeout, then a storage error", function()
    for _, extra in ipairs { {}, { busy_timeout_ms = 50 } } do
      local path = fresh("locked")
      local p = assert(loyalty.program(settings(path, extra)))
      local other = assert(core.sqlite_open(path))
      assert(other:exec("BEGIN IMMEDIATE")) -- another process holds the write lock
      local t0 = core.now()
      local r, err = p:order_placed(TOM, order("SF-L" .. n))
      local waited = core.now() - t0
      assert.is_nil(r)
      assert.equals("storage", err.kind)
      assert.equals("SF-L" .. n, err.order_id)
      assert.is_true(waited < 5, "waited " .. waited .. " s") -- the old default was 10 s
      assert(other:exec("ROLLBACK"))
      r = assert(p:order_placed(TOM, order("SF-L" .. n))) -- the lock gone, the same order queues
      assert.is_true(r.queued)
      other:close()
      p:close()
    end
    assert.equals(500, require("loyalty.outbox.sqlite").BUSY_TIMEOUT_MS)
  end)

  for _, fault in ipairs {
    { name = "a corrupt file", make = function(path)
      local f = assert(io.open(path, "wb"))
      f:write(("this is not a database\n"):rep(200))
      f:close()
    end, fix = function(path) os.remove(path) end, says = "not an SQLite database" },
    { name = "a missing directory", make = function() end, dir = true, says = "cannot be opened",
      fix = function(path) os.execute("mkdir -p " .. proc.quote(path:match("^(.*)/"))) end },
  } do
    it(fault.name .. ": the program starts, serves reads, writes fail with a storage error until fixed", function()
      local path = fault.dir and (dir .. "/gone" .. n .. "/sub/outbox.db") or fresh("corrupt")
      n = n + 1
      fault.make(path)
      local events = {}
      local p = assert(loyalty.program(settings(path, nil, events)))
      -- Reads work.
      local s = assert(p:summary(TOM))
      assert.is_true(s.enrolled)
      assert(p:quote_redemption(TOM, { lines = order("x").lines, total = 500 }, 100))
      -- The start was logged, with the reason.
      assert.equals("outbox_unavailable", events[1][2])
      assert.matches(fault.says, events[1][3].reason, 1, true)
      -- A write that needs the outbox: a storage error saying why, with the order id, logged.
      local r, err = p:order_placed(TOM, order("SF-C" .. n))
      assert.is_nil(r)
      assert.equals("storage", err.kind)
      assert.equals("SF-C" .. n, err.order_id)
      assert.matches(fault.says, tostring(err), 1, true)
      assert.equals("outbox_put_failed", events[#events][2])
      local st, serr = p.outbox:status()
      assert.is_nil(st)
      assert.matches(fault.says, tostring(serr), 1, true)
      -- Fixed: the next write opens the store and queues.
      fault.fix(path)
      p.outbox.reopen_interval = 0
      r = assert(p:order_placed(TOM, order("SF-C" .. n)))
      assert.is_true(r.queued)
      assert.equals(1, assert(p.outbox:status()).counts.pending)
      p:close()
    end)
  end

  it("`loyalty outbox status` explains a corrupt outbox (exit 1)", function()
    local path = fresh("cli")
    local f = assert(io.open(path, "wb"))
    f:write(("garbage"):rep(1000))
    f:close()
    local conf = dir .. "/store" .. n .. ".conf.lua"
    f = assert(io.open(conf, "w"))
    f:write(string.format("return { crm = { base_url = %q, username = 'store.server', password = 'server123' },"
                          .. " outbox = { backend = 'sqlite', path = %q } }", sb.url, path))
    f:close()
    local p = assert(io.popen(LUA .. " bin/loyalty outbox status --config " .. proc.quote(conf) .. " 2>&1; echo rc=$?"))
    local out = p:read("*a")
    p:close()
    assert.matches("rc=1", out, 1, true)
    assert.matches("outbox unavailable", out, 1, true)
    assert.matches("not an SQLite database", out, 1, true)
    assert.matches("move it aside", out, 1, true)
  end)
end)

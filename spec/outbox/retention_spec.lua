-- Delivered entries are purged after the outbox's retention (keep_delivered_s, default 3 days);
-- pending and dead ones never are. `outbox drain` shows its progress.
local outbox = require "loyalty.outbox"
local sqlite = require "loyalty.outbox.sqlite"
local drainer = require "loyalty.outbox.drainer"
local cli = require "loyalty.cli.outbox"
local loyalty = require "loyalty"
local support = require "support.sandbox"
local proc = require "outbox.helpers.proc"
local runner = require "loyalty.ngx.runner"

local function tx(number, mobile)
  return { type = "regular", number = number, amount = 100, customer = { mobile = mobile },
           line_items = { line_item = { { serial = 1, item_code = "SKU", qty = 1, rate = 100, amount = 100 } } } }
end

local function buffer()
  local b = { parts = {} }
  function b.write(self, ...)
    for _, s in ipairs { ... } do self.parts[#self.parts + 1] = s end
  end
  function b.text(self) return table.concat(self.parts) end
  return b
end

describe("outbox retention", function()
  local dir
  lazy_setup(function() dir = proc.tmpdir() end)
  lazy_teardown(function() proc.rmdir(dir) end)

  it("defaults to a few days and refuses a negative retention", function()
    local ob = assert(outbox.open { backend = "sqlite", path = dir .. "/default.db" })
    assert.equal(3 * 86400, ob.keep_delivered_s)
    assert.equal(3 * 86400, assert(ob:status()).keep_delivered_s)
    ob:close()
    local bad, err = outbox.open { backend = "sqlite", path = dir .. "/bad.db", keep_delivered_s = -1 }
    assert.is_nil(bad)
    assert.equal("config", err.kind)
    local _, perr = loyalty.program { crm = { base_url = "http://127.0.0.1:1", username = "u", password = "p" },
                                      outbox = { path = dir .. "/x.db", keep_delivered_s = "soon" } }
    assert.equal("config", perr.kind)
    assert.truthy(tostring(perr):find("keep_delivered_s", 1, true))
  end)

  it("purges only delivered entries older than the retention", function()
    local now = 1000000
    local ob = assert(outbox.open { backend = "sqlite", path = dir .. "/purge.db", keep_delivered_s = 100,
                                    clock = function() return now end })
    local ids = {}
    for i = 1, 4 do ids[i] = assert(ob:put { kind = "transaction_add", customer_key = "m:" .. i,
                                              payload = tx("R" .. i, "91999900000" .. i) }) end
    assert(ob:due(now, 10, 30))
    assert(ob:mark_delivered(ids[1]))                      -- delivered at 1000000
    now = now + 50
    assert(ob:mark_delivered(ids[2]))                      -- delivered at 1000050
    assert(ob:mark_dead(ids[3], { kind = "api", message = "no" }))
    -- ids[4] stays pending
    now = 1000000 + 100                                     -- exactly the retention: kept
    assert.equal(0, assert(ob:purge_delivered()))
    now = 1000000 + 101
    assert.equal(1, assert(ob:purge_delivered()))
    assert.is_nil(ob:get(ids[1]))
    assert.equal("delivered", ob:get(ids[2]).state)
    now = 1000000 + 10 ^ 7
    assert.equal(1, assert(ob:purge_delivered()))
    assert.equal("dead", ob:get(ids[3]).state)
    assert.equal("pending", ob:get(ids[4]).state)
    local st = assert(ob:status())
    assert.same({ pending = 1, delivered = 0, dead = 1 }, st.counts)
    ob:close()
  end)

  it("a drain purges what is past the retention and says how many", function()
    local now = 5000000
    local ob = assert(sqlite.open { path = dir .. "/drain.db", keep_delivered_s = 10,
                                    clock = function() return now end })
    local id = assert(ob:put { kind = "transaction_add", customer_key = "m:1", payload = tx("D1", "919999000001") })
    assert(ob:due(now, 10, 30))
    assert(ob:mark_delivered(id))
    now = now + 11
    local client = { provider = { ops = {} } } -- nothing is due: the drain only purges
    local t = assert(drainer.run(client, ob, {}))
    assert.equal(0, t.claimed)
    assert.equal(1, t.purged)
    ob:close()
  end)
end)

describe("outbox drain progress", function()
  it("on a terminal: one line rewritten in place, then the totals", function()
    local b, now = buffer(), 0
    local bar = cli.progress(b, true, 100, function() return now end)
    for i = 1, 5 do
      now = i * 0.2
      bar.entry(i == 3 and "failed" or "delivered")
    end
    bar.finish()
    local text = b:text()
    assert.equal(6, select(2, text:gsub("\r", "\r")))     -- five redraws (0.2 s apart) and the last line
    assert.equal(1, select(2, text:gsub("\n", "\n")))
    assert.truthy(text:find("5 entries: 4 delivered, 1 to retry, 0 dead (5.0/s)\27[K\n", 1, true), text)
  end)

  describe("not on a terminal", function()
    local sb, dir, conf
    lazy_setup(function()
      sb = support.start()
      dir = proc.tmpdir()
      conf = dir .. "/store.conf.lua"
      local f = assert(io.open(conf, "w"))
      f:write(([[
return {
  crm = { base_url = %q, username = "store.server", password = "server123", max_attempts = 1 },
  outbox = { backend = "sqlite", path = %q, always = true },
}
]]):format(sb.url, dir .. "/outbox.db"))
      f:close()
    end)
    lazy_teardown(function()
      if sb then sb:stop() end
      proc.rmdir(dir)
    end)

    it("prints a line every --every entries and the totals, and status counts what is kept", function()
      local p = assert(loyalty.program(conf))
      local mobiles = { "919999000001", "917713643123", "919999000003" }
      for i = 1, 5 do
        assert(p:order_placed({ mobile = mobiles[(i - 1) % 3 + 1] },
          { id = "PROG-" .. i, total = 100, lines = { { sku = "A", qty = 1, price = 100, amount = 100 } } }))
      end
      p:close()
      local out, err = buffer(), buffer()
      assert.equal(0, cli.main({ "drain", "--once", "--every=2", "--config", conf }, out, err))
      local lines = {}
      for l in out:text():gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equal(3, #lines, out:text())
      assert.matches("^2 entries: 2 delivered, 0 to retry, 0 dead %([%d.]+/s%)$", lines[1])
      assert.matches("^4 entries: 4 delivered", lines[2])
      assert.matches("^5 entries: 5 delivered, 0 to retry, 0 dead", lines[3])
      local booked = 0
      for _, t in ipairs(sb:state().transactions) do
        if t.number:find("^PROG%-") then booked = booked + 1 end
      end
      assert.equal(5, booked)
      out = buffer()
      assert.equal(0, cli.main({ "status", "--config", conf }, out, err))
      assert.matches("0 pending, 5 delivered %(kept 3 days%), 0 dead", out:text())
    end)

    it("on a real terminal (a pty), the command draws its line in place", function()
      if not runner.run("command -v script >/dev/null 2>&1") then return pending("no script(1) here") end
      local p = assert(loyalty.program(conf))
      assert(p:order_placed({ mobile = "919999000001" },
        { id = "PTY-1", total = 100, lines = { { sku = "A", qty = 1, price = 100, amount = 100 } } }))
      p:close()
      local vm = type(jit) == "table" and "luajit" or "lua5.4"
      local cmd = vm .. " bin/loyalty outbox drain --once --config " .. conf
      local pipe = assert(io.popen("script -qec " .. runner.shell_quote(cmd) .. " /dev/null"))
      local text = pipe:read("*a")
      pipe:close()
      assert.truthy(text:find("\r1 entry: 1 delivered, 0 to retry, 0 dead (", 1, true), text)
      assert.truthy(text:find("\27[K", 1, true), text)
    end)
  end)
end)

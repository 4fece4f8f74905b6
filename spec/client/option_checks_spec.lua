-- Every option table is checked by loyalty.schema, so an unknown key or a wrong type reads the
-- same wherever it is made: nginx settings, outbox and drainer options, rules limits.
local outbox = require "loyalty.outbox"
local drainer = require "loyalty.outbox.drainer"
local rules = require "loyalty.rules"
local loyalty_ngx = require "loyalty.ngx"

local function raised(fn, ...)
  local ok, msg = pcall(fn, ...)
  assert.is_false(ok, "expected a raise")
  return tostring(msg)
end

describe("option checks", function()
  it("loyalty.ngx.configure raises in schema's words", function()
    assert.matches("loyalty.ngx.configure: unknown option 'transprt'",
                   raised(loyalty_ngx.configure, { transprt = "socket" }), 1, true)
    assert.matches("loyalty.ngx.configure: option 'gzip' must be a boolean, got string",
                   raised(loyalty_ngx.configure, { gzip = "yes" }), 1, true)
    assert.matches("loyalty.ngx.configure: option 'transport': 'curl' is not one of proxy, socket, thread",
                   raised(loyalty_ngx.configure, { transport = "curl" }), 1, true)
    assert.matches("loyalty.ngx.configure: option 'lock_ttl' must be more than 0",
                   raised(loyalty_ngx.configure, { lock_ttl = 0 }), 1, true)
    assert.equal("socket", loyalty_ngx.settings().transport) -- nothing taken from a refused table
  end)

  it("outbox.open answers a config error naming outbox.<key>", function()
    local cases = {
      { { backend = "sqlite", path = "/tmp/x.db", pathh = 1 }, "loyalty.outbox: unknown option 'pathh'",
        "outbox.pathh" },
      { { backend = "sqlite", path = 5 },
        "loyalty.outbox: option 'path' must be a string (the SQLite file), got number", "outbox.path" },
      { { backend = "mysql" }, "loyalty.outbox: option 'backend': 'mysql' is not one of redis, sqlite",
        "outbox.backend" },
      { { path = "/tmp/x.db", keep_delivered_s = -1 },
        "loyalty.outbox: option 'keep_delivered_s' must be from 0 to inf", "outbox.keep_delivered_s" },
      { { backend = "redis", timeout_ms = 0 }, "loyalty.outbox: option 'timeout_ms' must be more than 0",
        "outbox.timeout_ms" },
    }
    for _, c in ipairs(cases) do
      local ob, err = outbox.open(c[1])
      assert.is_nil(ob)
      assert.same({ "config", c[2], c[3] }, { err.kind, err.message, err.key })
    end
    -- a backend opened directly reads the same
    local _, err = require("loyalty.outbox.sqlite").open { path = "/tmp/x.db", pathh = 1 }
    assert.equal("loyalty.outbox: unknown option 'pathh'", err.message)
  end)

  it("the drainer raises on a wrong option, and fills its defaults", function()
    local target, ob = {}, { clock = os.time }
    assert.matches("loyalty.outbox.drainer: unknown option 'max_attempt'",
                   raised(drainer.new, target, ob, { max_attempt = 3 }), 1, true)
    assert.matches("loyalty.outbox.drainer: option 'max_attempts' must be a whole number",
                   raised(drainer.new, target, ob, { max_attempts = 2.5 }), 1, true)
    assert.matches("loyalty.outbox.drainer: option 'sleep' must be a function, got boolean",
                   raised(drainer.new, target, ob, { sleep = true }), 1, true)
    local d = drainer.new(target, ob, { batch = 5 })
    assert.same({ 8, 2, 600, 120, 5 }, { d.max_attempts, d.backoff_base, d.backoff_max, d.lease, d.batch })
  end)

  it("rules options and limits raise in the same words", function()
    assert.matches("loyalty.rules: unknown option 'instruction_limt'",
                   raised(rules.load, "x", { instruction_limt = 5 }), 1, true)
    assert.matches("loyalty.rules: option 'time_limit_ms' must be more than 0",
                   raised(rules.load, "x", { time_limit_ms = 0 }), 1, true)
    assert.matches("loyalty.rules: option 'last_good' must be a string (a directory path), got boolean",
                   raised(rules.watch, "x", { last_good = true }), 1, true)
    assert.matches("loyalty.rules: a table of options expected, got string",
                   raised(rules.check, "x", "fast"), 1, true)
  end)
end)

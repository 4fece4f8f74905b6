-- The outbox interface, the same specs for both backends (SQLite via the C core, Redis).
local outbox = require "loyalty.outbox"
local proc = require "outbox.helpers.proc"
local stores = require "outbox.helpers.stores"

local function tx(number, mobile)
  return { type = "regular", number = number, amount = 100, customer = { mobile = mobile or "919999000001" },
           line_items = { line_item = { { serial = 1, item_code = "SKU", qty = 1, rate = 100, amount = 100 } } } }
end

local BACKENDS = { "sqlite", "redis" }

for _, backend in ipairs(BACKENDS) do
  describe("loyalty.outbox (" .. backend .. ")", function()
    local now = 1000
    local store = stores.new(backend, "ob", function() return now end)
    store.use()
    local open = store.open

    it("keeps an entry with its payload, and hands out one entry per customer, oldest first", function()
      local ob = open()
      local a = assert(ob:put { kind = "transaction_add", customer_key = "mobile:1", payload = tx("A") })
      local b = assert(ob:put { kind = "transaction_return", customer_key = "mobile:1", payload = tx("A") })
      local c = assert(ob:put { kind = "transaction_add", customer_key = "mobile:2", payload = tx("C", "2") })
      local due = assert(ob:due(now, 10, 30))
      assert.equals(2, #due)
      assert.equals(a, due[1].id)
      assert.equals(c, due[2].id)
      assert.equals("A", due[1].payload.number)
      assert.equals("SKU", due[1].payload.line_items.line_item[1].item_code)
      assert.equals(1, due[1].attempts)
      assert.equals("pending", due[1].state)
      -- Leased: a second drainer gets nothing for these customers.
      assert.same({}, assert(ob:due(now, 10, 30)))
      assert.is_true(assert(ob:mark_delivered(a)))
      local next_due = assert(ob:due(now, 10, 30))
      assert.equals(1, #next_due)
      assert.equals(b, next_due[1].id)
      ob:close()
    end)

    it("returns a crashed drainer's claim to the line when its lease runs out", function()
      local ob = open()
      local id = assert(ob:put { kind = "customer_add", customer_key = "mobile:9", payload = { mobile = "9" } })
      assert.equals(1, #assert(ob:due(now, 10, 5)))
      assert.equals(0, #assert(ob:due(now + 4, 10, 5)))
      local again = assert(ob:due(now + 6, 10, 5))
      assert.equals(id, again[1].id)
      assert.equals(2, again[1].attempts)
      ob:close()
    end)

    it("backs off a failed entry, keeps its last error, and dead-letters it", function()
      local ob = open()
      local id = assert(ob:put { kind = "transaction_add", customer_key = "mobile:3", payload = tx("F") })
      assert(ob:due(now, 10, 30))
      assert.is_true(assert(ob:mark_failed(id, { kind = "http", message = "HTTP 503" }, now + 50)))
      assert.equals(0, #assert(ob:due(now + 10, 10, 30)))
      local e = assert(ob:due(now + 51, 10, 30))[1]
      assert.equals(id, e.id)
      assert.equals("HTTP 503", e.last_error)
      assert.is_true(assert(ob:mark_dead(id, "loyalty: api error 611: Customer not found")))
      local st = assert(ob:status())
      assert.equals(1, st.counts.dead)
      assert.equals(0, st.counts.pending)
      assert.equals(id, st.dead[1].id)
      assert.matches("611", st.dead[1].last_error)
      assert.is_false(ob:mark_delivered(id)) -- dead stays dead until retried
      assert.is_true(assert(ob:retry(id)))
      local r = assert(ob:get(id))
      assert.equals("pending", r.state)
      assert.equals(0, r.attempts)
      assert.equals(1, #assert(ob:due(now + 51, 10, 30)))
      ob:close()
    end)

    it("reports counts and the oldest pending entry", function()
      local ob = open()
      local first = assert(ob:put { kind = "transaction_add", customer_key = "m:1", payload = tx("S1") })
      assert(ob:put { kind = "transaction_add", customer_key = "m:2", payload = tx("S2") })
      local d = assert(ob:put { kind = "transaction_add", customer_key = "m:3", payload = tx("S3") })
      assert(ob:due(now, 10, 30))
      assert(ob:mark_delivered(d))
      local st = assert(ob:status())
      assert.same({ pending = 2, delivered = 1, dead = 0 }, st.counts)
      assert.equals(first, st.oldest_pending.id)
      ob:close()
    end)

    it("queues a dedupe key once", function()
      local ob = open()
      local id1, existed1 = ob:put { kind = "transaction_add", customer_key = "m:1", payload = tx("D"),
                                     dedupe_key = "bill:D" }
      local id2, existed2 = ob:put { kind = "transaction_add", customer_key = "m:1", payload = tx("D"),
                                     dedupe_key = "bill:D" }
      assert.equals(id1, id2)
      assert.is_false(existed1)
      assert.is_true(existed2)
      assert.equals(1, assert(ob:status()).counts.pending)
      ob:close()
    end)

    it("refuses unknown kinds, bad keys and payloads holding the caller's credentials", function()
      local ob = open()
      assert.has_error(function() ob:put { kind = "launch_rockets", customer_key = "m:1", payload = {} } end)
      assert.has_error(function() ob:put { kind = "customer_add", customer_key = "m:1\r\nX", payload = {} } end)
      assert.has_error(function() ob:put { kind = "customer_add", customer_key = ("k"):rep(600), payload = {} } end)
      assert.has_error(function() ob:put { kind = "customer_add", customer_key = "m:1", payload = "x" } end)
      local secrets = { "server123", "c3RvcmUuc2VydmVyOjhhMTZh" }
      local id, err = ob:put { kind = "customer_add", customer_key = "m:1", secrets = secrets,
                               payload = { nested = { note = "pw server123" } } }
      assert.is_nil(id)
      assert.equals("storage", err.kind)
      assert.is_nil(tostring(err):find("server123", 1, true))
      assert.equals(0, assert(ob:status()).counts.pending)
      -- What merely looks like a credential is data: stored as given.
      for _, payload in ipairs { { nested = { password = "p" } }, { h = "Basic c3RvcmU6eHl6" },
                                 { description = "Basic Tee", token = "a", Authorization = "Bearer x" } } do
        local pid = assert(ob:put { kind = "customer_add", customer_key = "m:1", payload = payload, secrets = secrets })
        assert.same(payload, assert(ob:get(pid)).payload)
      end
      -- A payload JSON cannot hold is a storage error, not a raise.
      id, err = ob:put { kind = "customer_add", customer_key = "m:1", payload = { f = function() end } }
      assert.is_nil(id)
      assert.equals("storage", err.kind)
      ob:close()
    end)

    it("close is idempotent", function()
      local ob = open()
      ob:close()
      ob:close()
    end)
  end)
end

describe("loyalty.outbox (sqlite) storage", function()
  local dir
  lazy_setup(function() dir = proc.tmpdir() end)
  lazy_teardown(function() proc.rmdir(dir) end)

  it("opens in WAL mode with synchronous=FULL and survives a reopen", function()
    local path = dir .. "/reopen.db"
    local ob = assert(outbox.open { backend = "sqlite", path = path })
    local id = assert(ob:put { kind = "customer_add", customer_key = "m:1", payload = { mobile = "1" } })
    assert.equals("wal", ob.db:query("PRAGMA journal_mode")[1].journal_mode)
    assert.equals(2, ob.db:query("PRAGMA synchronous")[1].synchronous)
    ob:close()
    ob = assert(outbox.open { backend = "sqlite", path = path })
    assert.equals("1", assert(ob:get(id)).payload.mobile)
    ob:close()
  end)

  it("reports an unusable path as a storage error", function()
    local ob, err = outbox.open { backend = "sqlite", path = dir .. "/no/such/dir/x.db" }
    assert.is_nil(ob)
    assert.equals("storage", err.kind)
    local _, cerr = outbox.open { backend = "sqlite" }
    assert.equals("config", cerr.kind)
    local _, berr = outbox.open { backend = "kafka" }
    assert.equals("config", berr.kind)
  end)

  it("reports an unreachable Redis as a storage error", function()
    local ob, err = outbox.open { backend = "redis", host = "127.0.0.1", port = proc.free_port() }
    assert.is_nil(ob)
    assert.equals("storage", err.kind)
  end)
end)

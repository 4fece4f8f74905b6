-- The example storefront's outbox drainer (examples/openresty, proxy transport, two workers): an
-- order the CRM could not take is queued by the order-placed hook and later delivered by a
-- worker timer, once. A store without an outbox starts no drainer.
local http = require "support.http"
local sandbox = require "support.sandbox"
local support = require "nginx.support"
local runner = require "loyalty.ngx.runner"
local outbox = require "loyalty.outbox"

local quote = runner.shell_quote

-- Timers pending or running in the worker that answers: the drainer is a timer.every.
local TIMERS_LOCATION = [[
location = /_spec_timers {
    content_by_lua_block { ngx.say(ngx.timer.pending_count() + ngx.timer.running_count()) }
}
]]

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/loyalty-outbox-nginx.XXXXXX")
  local dir = p:read("*l")
  p:close()
  -- nginx workers run as nobody: they create the SQLite file and its WAL here.
  runner.run("chmod 777 " .. quote(dir))
  return dir
end

local function timers(srv)
  local r = assert(http.get(srv.url .. "/_spec_timers"))
  assert.equal(200, r.status)
  return tonumber(r.body)
end

local function count(text, needle)
  local n, from = 0, 1
  while true do
    local at = text:find(needle, from, true)
    if not at then return n end
    n, from = n + 1, at + #needle
  end
end

describe("example storefront with an outbox", function()
  local sb, srv, dir, db

  lazy_setup(function()
    dir = tmpdir()
    db = dir .. "/outbox.db"
    local conf = dir .. "/store.conf.lua"
    local f = assert(io.open(conf, "w"))
    f:write(([[
return {
  provider = "capillary",
  crm = { base_url = env("LOYALTY_BASE_URL"), username = "store.server", password = "server123",
          timeout_ms = 5000 },
  identifier = "mobile",
  earn_on_order = true,
  outbox = { backend = "sqlite", path = %q, backoff_base_s = 0.5, backoff_max_s = 1 },
}
]]):format(db))
    f:close()
    sb, srv = support.start_storefront {
      transport = "proxy", workers = 2, log_level = "notice", server_extra = TIMERS_LOCATION,
      env = { LOYALTY_STORE_CONF = conf, LOYALTY_OUTBOX_INTERVAL = "0.2",
              LOYALTY_CLIENT_KEY = sandbox.OAUTH_KEY, LOYALTY_CLIENT_SECRET = sandbox.OAUTH_SECRET },
    }
  end)

  lazy_teardown(function()
    support.stop_storefront(sb, srv)
    if dir then runner.run("rm -rf " .. quote(dir)) end
  end)

  it("starts the drainer in each worker", function()
    local started = support.eventually(function()
      return count(srv:error_log(), "outbox drainer started") == 2
    end, 10)
    assert.is_true(started, srv:error_log())
    assert.is_true(timers(srv) >= 1)
  end)

  it("queues an order the CRM cannot take and delivers it once the CRM is back", function()
    assert(sb:faults { match = "/v1.1/transaction/add", status = 500, count = 1000 })
    local order = {
      id = "OBX-1", store_code = "store.one", total = 3000, shipping = 0, tax = 0,
      lines = { { sku = "SKU-OBX", qty = 1, price = 3000, amount = 3000, categories = { "apparel" } } },
    }
    local placed = assert(http.post(srv.url .. "/hooks/order-placed", { user = "tom", order = order }))
    assert.equal(200, placed.status, placed.body)
    assert.is_true(placed.json.queued)
    assert.is_number(placed.json.outbox_id)
    assert.equal(500, placed.json.crm_error.status)
    assert.equal(0, sb:bills("OBX-1"))
    -- the backlog shows in the metrics scrape
    local m = assert(http.get(srv.url .. "/metrics"))
    assert.truthy(m.body:find("\nloyalty_outbox_pending 1\n", 1, true), m.body)
    assert.truthy(m.body:find("\nloyalty_outbox_dead 0\n", 1, true), m.body)
    assert(sb:clear_faults())

    local ob = assert(outbox.open { backend = "sqlite", path = db })
    local entry
    local delivered = support.eventually(function()
      entry = assert(ob:get(placed.json.outbox_id))
      return entry.state == "delivered" and sb:bills("OBX-1") == 1
    end, 15)
    ob:close()
    local log = srv:error_log()
    assert.is_true(delivered == true, "entry " .. tostring(entry and entry.state) .. "; log:\n" .. log)
    assert.equal("transaction_add", entry.kind)
    assert.equal(1, sb:bills("OBX-1"))
    assert.truthy(log:find("outbox drained: 1 delivered", 1, true), log)
    assert.truthy(assert(http.get(srv.url .. "/metrics")).body:find("\nloyalty_outbox_pending 0\n", 1, true))
    assert.is_nil(log:find("outbox drain failed", 1, true), log)
  end)
end)

describe("example storefront without an outbox", function()
  local sb, srv

  lazy_setup(function()
    sb, srv = support.start_storefront {
      transport = "proxy", workers = 2, log_level = "notice", server_extra = TIMERS_LOCATION,
      env = { LOYALTY_OUTBOX_INTERVAL = "0.05" },
    }
  end)
  lazy_teardown(function() support.stop_storefront(sb, srv) end)

  it("starts no drainer", function()
    local r = assert(http.get(srv.url .. "/loyalty/summary", { ["X-Demo-User"] = "tom" }))
    assert.equal(200, r.status)
    -- Both workers are up (and a started drainer would have ticked many times) by now.
    runner.sleep(0.5)
    for _ = 1, 8 do assert.equal(0, timers(srv)) end
    local log = srv:error_log()
    assert.is_nil(log:find("outbox drain", 1, true), log)
  end)
end)

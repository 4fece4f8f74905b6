-- The drainer in OpenResty: two nginx workers run the timer, the shared-dict lock lets one at a
-- time drain, and the CRM (the sandbox, in its own nginx) gets each queued order once.
local loyalty = require "loyalty"
local support = require "support.sandbox"
local runner = require "loyalty.ngx.runner"
local outbox = require "loyalty.outbox"
local proc = require "outbox.helpers.proc"
local socket = require "socket"

local N = 30

describe("loyalty.ngx.outbox_timer", function()
  local sb, dir, server

  lazy_setup(function()
    sb = support.start()
    dir = proc.tmpdir()
    os.execute("chmod 777 " .. proc.quote(dir)) -- nginx workers may run as nobody
  end)
  lazy_teardown(function()
    if server then server:stop() end
    if sb then sb:stop() end
    proc.rmdir(dir)
  end)

  it("drains the outbox from a worker timer, one worker at a time", function()
    local db = dir .. "/ngx.db"
    local conf = dir .. "/store.conf.lua"
    local f = assert(io.open(conf, "w"))
    f:write(("return { crm = { base_url = %q, username = 'store.server', password = 'server123' },\n" ..
             "  outbox = { backend = 'sqlite', path = %q, always = true } }\n"):format(sb.url, db))
    f:close()
    local p = assert(loyalty.program(conf))
    for i = 1, N do
      local r = assert(p:order_placed({ mobile = i % 2 == 0 and "919999000001" or "919999000003" },
        { id = "NGX-" .. i, total = 100, lines = { { sku = "A", qty = 1, price = 100, amount = 100 } } }))
      assert.is_true(r.queued)
    end
    p:close()
    os.execute("chmod 666 " .. proc.quote(db) .. "*")

    local err
    server, err = runner.start {
      workers = 2,
      -- Timers cannot use subrequests: the client's calls go through the worker-thread transport.
      main = "thread_pool loyalty threads=2;",
      http = table.concat({
        "lua_shared_dict loyalty_locks 1m;",
        "init_worker_by_lua_block {",
        "  assert(require('loyalty.ngx.outbox_timer').start {",
        "    program = " .. ("%q"):format(conf) .. ", dict = 'loyalty_locks', interval = 0.05,",
        "    on_drain = function(t) if t.claimed > 0 then ngx.log(ngx.NOTICE, 'drained ', t.delivered) end end,",
        "  })",
        "}",
        "server { listen 127.0.0.1:${port}; location / { return 200 'ok'; } }",
      }, "\n"),
    }
    assert(server, err)

    local ob = assert(outbox.open { backend = "sqlite", path = db })
    local deadline = socket.gettime() + 15
    local st
    repeat
      socket.sleep(0.05)
      st = assert(ob:status())
    until st.counts.pending == 0 or socket.gettime() > deadline
    ob:close()
    local log = server:error_log()
    assert.equals(0, st.counts.pending, log)
    assert.equals(N, st.counts.delivered)
    assert.is_nil(log:find("drain failed", 1, true), log)
    local counts = {}
    for _, t in ipairs(sb:state().transactions) do counts[t.number] = (counts[t.number] or 0) + 1 end
    for i = 1, N do assert.equals(1, counts["NGX-" .. i]) end
    assert.equals(N, sb:state().requests["/v1.1/transaction/add"])
  end)
end)

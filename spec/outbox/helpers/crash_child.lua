-- A storefront process for the crash specs (run with lua5.4):
--   crash_child.lua MODE SANDBOX_URL BACKEND TARGET N PREFIX
-- MODE place | drain | both. BACKEND sqlite (TARGET = file) | redis (TARGET = port:key).
-- Places orders PREFIX1..PREFIXN with outbox.always (a re-run re-places them all: the store
-- re-runs its hook for orders it has no acknowledgement for), then drains until nothing is
-- pending. Prints progress markers the spec waits for before it kills.
local loyalty = require "loyalty"
local drainer = require "loyalty.outbox.drainer"
local socket = require "socket"

local mode, url, backend, target, n, prefix = ...
n = tonumber(n)
local ob = { always = true, lease_s = 1 }
if backend == "sqlite" then
  ob.backend, ob.path = "sqlite", target
else
  local port, key = target:match("^(%d+):(.+)$")
  ob.backend, ob.host, ob.port, ob.key = "redis", "127.0.0.1", tonumber(port), key
end
local p = assert(loyalty.program {
  crm = { base_url = url, username = "store.server", password = "server123", timeout_ms = 500, max_attempts = 1 },
  outbox = ob,
})
local CUSTOMERS = { "919999000001", "917713643123", "919999000003" }
local function say(s)
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

if mode ~= "drain" then
  say("placing")
  for i = 1, n do
    local r = assert(p:order_placed({ mobile = CUSTOMERS[i % 3 + 1] },
      { id = prefix .. i, total = 100, lines = { { sku = "A", qty = 1, price = 100, amount = 100 } } }))
    assert(r.queued, "always = true queues every order")
  end
  say("placed")
end
if mode ~= "place" then
  say("draining")
  local deadline = socket.gettime() + 30
  while socket.gettime() < deadline do
    local t = assert(drainer.run(p, p.outbox, { lease_s = 1, backoff_base_s = 0.05, backoff_max_s = 0.2,
                                                max_attempts = 50, batch = 5 }))
    local st = assert(p.outbox:status())
    if st.counts.pending == 0 then break end
    if t.claimed == 0 then socket.sleep(0.05) end
  end
  say("drained")
end
p:close()

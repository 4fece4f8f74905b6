-- The Redis outbox inside nginx: one outbox per worker serves every request, although a cosocket
-- belongs to the request that opened it (connections go back to nginx's pool between calls).
local runner = require "loyalty.nginx_runner"
local outbox = require "loyalty.outbox"
local http = require "support.http"
local redis_helper = require "outbox.helpers.redis"

local PASSWORD = "outbox-spec-pass"

describe("redis outbox inside nginx", function()
  local redis, server

  lazy_setup(function()
    redis = redis_helper.start { password = PASSWORD }
    local err
    server, err = runner.start {
      workers = 2,
      http = ([[
        init_worker_by_lua_block { package.loaded.spec_outbox = {} }
        server {
          listen 127.0.0.1:${port};
          location /put { content_by_lua_block {
            local held = package.loaded.spec_outbox
            if not held.ob then
              held.ob = assert(require("loyalty.outbox").open {
                backend = "redis", host = "127.0.0.1", port = %d, password = %q })
            end
            local id, err = held.ob:put { kind = "transaction_add", customer_key = "mobile:" .. ngx.var.arg_n,
                                          payload = { number = "NGX-" .. ngx.var.arg_n } }
            if not id then ngx.status = 500 ngx.say(tostring(err)) return end
            ngx.say(id)
          } }
        }
      ]]):format(redis.port, PASSWORD),
    }
    assert(server, err)
  end)

  lazy_teardown(function()
    if server then server:stop() end
    if redis then redis.stop() end
  end)

  it("queues from request after request with one outbox per worker", function()
    local ids = {}
    for n = 1, 12 do
      local r = assert(http.get(server.url .. "/put?n=" .. n))
      assert.equal(200, r.status, r.body)
      ids[#ids + 1] = tonumber(r.body)
    end
    table.sort(ids)
    for i = 1, 12 do assert.equal(i, ids[i]) end
    local ob = assert(outbox.open { backend = "redis", host = "127.0.0.1", port = redis.port, password = PASSWORD })
    assert.equal(12, assert(ob:status()).counts.pending)
    ob:close()
    assert.is_nil(server:error_log():find("[error]", 1, true), server:error_log())
  end)
end)

-- The Redis outbox inside nginx: one outbox per worker serves every request, although a cosocket
-- belongs to the request that opened it (connections go back to nginx's pool between calls).
local runner = require "loyalty.ngx.runner"
local outbox = require "loyalty.outbox"
local http = require "support.http"
local redis_helper = require "outbox.helpers.redis"

-- a pattern character at the end and an open parenthesis: never used as a Lua pattern
local PASSWORD = "outbox-(spec)-pass%"

describe("the small RESP client outside nginx", function()
  local resp = require "loyalty.outbox.resp"

  it("redacts a password as plain text, whatever characters it has", function()
    for _, secret in ipairs { "p%", "a(b", "x[y", "%d+", ".*", "end%" } do
      assert.equal("auth [REDACTED] failed [REDACTED]", resp.redact("auth " .. secret .. " failed " .. secret, secret))
    end
  end)

  it("answers a wrong password with an error, for any password", function()
    local redis = redis_helper.start { password = PASSWORD }
    local ok, conn, err = pcall(resp.connect, { host = "127.0.0.1", port = redis.port, password = "bad(%" })
    local good = resp.connect { host = "127.0.0.1", port = redis.port, password = PASSWORD }
    local pong = good and good:call("PING")
    if good then good:close() end
    redis.stop()
    assert.is_true(ok, conn)
    assert.is_nil(conn)
    assert.equal("storage", err.kind)
    assert.matches("auth failed", err.message)
    assert.equal("PONG", pong)
  end)
end)

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
          # which client carries the outbox here, and a wrong password's answer
          location /which { content_by_lua_block {
            local resty = require "loyalty.ngx.redis"
            local ob, err = require("loyalty.outbox").open {
              backend = "redis", host = "127.0.0.1", port = %d, password = "wrong(%%" }
            ngx.say(resty.available(), " ", tostring(ob), " ", tostring(err))
          } }
        }
      ]]):format(redis.port, PASSWORD, redis.port),
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

  it("uses lua-resty-redis (resty.redis, else Debian's nginx.redis) and its pool", function()
    local r = assert(http.get(server.url .. "/which"))
    assert.equal(200, r.status, r.body)
    local expected = runner.run("test -f /usr/share/lua/5.1/resty/redis.lua") and "resty.redis" or "nginx.redis"
    assert.equal(expected, r.body:match("^(%S+)"))
    -- a wrong password is an error answer, not a raise, and is not echoed
    assert.truthy(r.body:find("nil ", 1, true), r.body)
    assert.truthy(r.body:find("auth failed", 1, true), r.body)
    assert.is_nil(r.body:find("wrong(%", 1, true))
  end)
end)

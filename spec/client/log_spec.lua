local log = require "loyalty.log"
local client = require "loyalty.client"

describe("loyalty.log", function()
  it("scrubs secrets from string fields and drops tables and functions", function()
    local got
    log.emit(function(level, event, fields) got = { level, event, fields } end,
             "warn", "retry", { message = "sent s3cr3t-value", attempt = 2, nested = {}, fn = print },
             { "s3cr3t-value" })
    assert.same({ "warn", "retry", { message = "sent [REDACTED]", attempt = 2 } }, got)
  end)

  it("never lets a failing sink break the caller", function()
    assert.has_no.errors(function() log.emit(function() error("boom") end, "info", "x", {}) end)
    assert.has_no.errors(function() log.emit(nil, "info", "x", {}) end)
  end)

  it("client:emit reaches the client's log option with its secrets scrubbed", function()
    local events = {}
    local c = assert(client.new {
      base_url = "http://127.0.0.1:9", username = "till", password = "hunter22",
      log = function(level, event, fields) events[#events + 1] = { level, event, fields } end,
    })
    c:emit("info", "token_refresh", { note = "password hunter22" })
    c:close()
    assert.same({ { "info", "token_refresh", { note = "password [REDACTED]" } } }, events)
  end)
end)

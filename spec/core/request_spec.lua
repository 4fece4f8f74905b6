local core = require "loyalty.core"

describe("loyalty.core build_request", function()
  it("joins base_url and path with exactly one slash", function()
    assert.equal("http://h/api/v2/x", core.build_request { base_url = "http://h/api/", path = "/v2/x" }.url)
    assert.equal("http://h/api/v2/x", core.build_request { base_url = "http://h/api", path = "v2/x" }.url)
    assert.equal("http://h/api/v2/x", core.build_request { base_url = "http://h/api", path = "/v2/x" }.url)
    assert.equal("http://h/api", core.build_request { base_url = "http://h/api" }.url)
  end)

  it("defaults to GET and keeps the method", function()
    assert.equal("GET", core.build_request { base_url = "http://h" }.method)
    assert.equal("PATCH", core.build_request { base_url = "http://h", method = "PATCH" }.method)
  end)

  it("sorts query keys and percent-encodes per RFC 3986", function()
    local req = core.build_request {
      base_url = "http://h", path = "/p",
      query = { q = "a b+c&d=e", a = "caf\195\169", tilde = "-._~", n = 5, t = true },
    }
    assert.equal("http://h/p?a=caf%C3%A9&n=5&q=a%20b%2Bc%26d%3De&t=true&tilde=-._~", req.url)
  end)

  it("repeats keys for array values and appends to an existing query", function()
    local req = core.build_request { base_url = "http://h/p?x=1", query = { id = { 3, "a/b" } } }
    assert.equal("http://h/p?x=1&id=3&id=a%2Fb", req.url)
  end)

  it("handles many query keys, headers and long URLs", function()
    local query, headers, expected = {}, {}, {}
    for i = 1, 40 do
      local k = string.format("k%02d", i)
      query[k] = string.rep("v", 50)
      headers["X-H" .. k] = tostring(i)
      expected[#expected + 1] = k .. "=" .. string.rep("v", 50)
    end
    local req = core.build_request { base_url = "http://h", path = "/p", query = query, headers = headers }
    assert.equal("http://h/p?" .. table.concat(expected, "&"), req.url)
    assert.equal(40, #req.headers)
    assert.equal("X-Hk01: 1", req.headers[1])
    assert.equal("X-Hk40: 40", req.headers[40])
  end)

  it("keeps array order and numeric values through sorting, below and above 16 pairs", function()
    local small = core.build_request { base_url = "http://h", query = { z = 1.5, b = { 3, 1, 2 }, a = 7 } }
    assert.equal("http://h?a=7&b=3&b=1&b=2&z=1.5", small.url)
    -- 14 single keys first in no particular order, then an array that crosses 16 pairs
    local query, expected = { m = {} }, {}
    for i = 1, 14 do query[string.format("k%02d", i)] = i end
    for i = 1, 10 do query.m[i] = 100 - i end
    for i = 1, 14 do expected[#expected + 1] = string.format("k%02d=%d", i, i) end
    for i = 1, 10 do expected[#expected + 1] = "m=" .. (100 - i) end
    local big = core.build_request { base_url = "http://h", query = query }
    assert.equal("http://h?" .. table.concat(expected, "&"), big.url)
  end)

  it("turns headers into sorted 'Name: value' lines", function()
    local req = core.build_request {
      base_url = "http://h", headers = { ["User-Agent"] = "ua/1", Authorization = "Basic x" },
    }
    assert.same({ "Authorization: Basic x", "User-Agent: ua/1" }, req.headers)
    assert.is_nil(req.body)
  end)

  it("refuses CR/LF/NUL in header names and values", function()
    for _, h in ipairs {
      { X = "a\r\nInjected: yes" }, { X = "a\nb" }, { X = "a\0b" }, { ["X\r\nY"] = "v" }, { ["X:Y"] = "v" },
    } do
      local req, err = core.build_request { base_url = "http://h", headers = h }
      assert.is_nil(req)
      assert.equal("config", err.kind)
    end
  end)

  it("refuses control characters and spaces in the URL", function()
    local req, err = core.build_request { base_url = "http://h", path = "/a\r\nHost: evil" }
    assert.is_nil(req)
    assert.equal("config", err.kind)
  end)

  it("encodes a json body and sets JSON headers unless given", function()
    local req = core.build_request { method = "POST", base_url = "http://h", json = { a = { 1, 2 } } }
    assert.same({ a = { 1, 2 } }, core.json_decode(req.body))
    assert.same({ "Content-Type: application/json", "Accept: application/json" }, req.headers)

    req = core.build_request {
      method = "POST", base_url = "http://h", json = {},
      headers = { ["content-type"] = "application/json; charset=utf-8" },
    }
    assert.same({ "content-type: application/json; charset=utf-8", "Accept: application/json" }, req.headers)
    assert.equal("{}", req.body)
  end)

  it("passes a raw body through", function()
    local req = core.build_request { method = "PUT", base_url = "http://h", body = "raw" }
    assert.equal("raw", req.body)
    assert.same({}, req.headers)
  end)

  it("returns json encode failures as errors", function()
    local req, err = core.build_request { method = "POST", base_url = "http://h", json = { f = print } }
    assert.is_nil(req)
    assert.equal("config", err.kind)
  end)

  it("raises on programmer errors", function()
    assert.has_error(function() core.build_request() end)
    assert.has_error(function() core.build_request { } end)
    assert.has_error(function() core.build_request { base_url = "http://h", method = "BREW" } end)
    assert.has_error(function() core.build_request { base_url = "http://h", json = {}, body = "x" } end)
    assert.has_error(function() core.build_request { base_url = "http://h", query = { [1] = "x" } } end)
    assert.has_error(function() core.build_request { base_url = "http://h", query = { a = {} , b = print } } end)
    assert.has_error(function() core.build_request { base_url = "http://h", headers = { X = {} } } end)
    assert.has_error(function() core.build_request { base_url = "http://h", qurey = {} } end)
  end)
end)

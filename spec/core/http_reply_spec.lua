-- core.http_reply: the cosocket transport's sans-IO reply framing. Every reply is also fed
-- split at every byte: a prefix is "need more" (never a wrong reply), the whole is the reply.
local core = require "loyalty.core"

local function gzip(s)
  local dir = os.tmpname()
  local f = assert(io.open(dir, "wb"))
  f:write(s)
  f:close()
  local p = assert(io.popen("gzip -c -n < " .. dir))
  local out = p:read("*a")
  p:close()
  os.remove(dir)
  return out
end

-- Feeds prefixes of raw; returns what the whole gives, after checking every prefix asks for more.
local function framed(raw, eof, head)
  for i = 0, #raw - 1 do
    local r, want = core.http_reply(raw:sub(1, i), false, head)
    assert(r == false, "prefix of " .. i .. " bytes gave " .. tostring(r) .. " " .. tostring(want))
    if want then assert(want == #raw or want > i, "want " .. want .. " at " .. i) end
  end
  return core.http_reply(raw, eof, head)
end

describe("core.http_reply", function()
  it("frames a Content-Length reply, lowercasing and joining header names", function()
    local raw = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Cap-RequestId: r1\r\n" ..
                "Vary: a\r\nvary: b\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
    local status, h, body, keep = framed(raw)
    assert.equal(200, status)
    assert.equal("application/json", h["content-type"])
    assert.equal("r1", h["x-cap-requestid"])
    assert.equal("a, b", h["vary"])
    assert.equal('{"ok":true}', body)
    assert.is_true(keep)
    -- decode_reply finds the request id and Retry-After in these headers (names known lowercase)
    local reply = core.decode_reply(status, h, body, nil, { "x-cap-requestid" })
    assert.equal("r1", reply.request_id)
    local _, h2 = core.http_reply("HTTP/1.1 503 Busy\r\nRETRY-AFTER: 7\r\nContent-Length: 0\r\n\r\n")
    assert.equal(7, core.decode_reply(503, h2).retry_after)
  end)

  it("tells the total size once Content-Length is known", function()
    local head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    local r, want, framing = core.http_reply(head .. "abc")
    assert.is_false(r)
    assert.equal(#head + 100, want)
    assert.equal("length", framing)
    -- and the framing of the others once their head is complete, nothing before
    assert.same({ false }, { core.http_reply("HTTP/1.1 200 OK\r\nContent-Le") })
    assert.same({ false, nil, "chunked" },
                { core.http_reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab") })
    assert.same({ false, nil, "close" }, { core.http_reply("HTTP/1.0 200 OK\r\n\r\nabc") })
  end)

  it("de-chunks, with extensions and trailers, split anywhere", function()
    local raw = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n" ..
                "5;x=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    local status, h, body, keep = framed(raw)
    assert.equal(201, status)
    assert.equal("hello 0123456789", body)
    assert.equal("chunked", h["transfer-encoding"])
    assert.is_true(keep)
  end)

  it("inflates gzip, chunked or not", function()
    local text = string.rep('{"customer":"tom","points":1234}', 50)
    local z = gzip(text)
    local raw = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " .. #z .. "\r\n\r\n" .. z
    local _, _, body = framed(raw)
    assert.equal(text, body)
    local half = math.floor(#z / 2)
    raw = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" ..
          string.format("%x\r\n", half) .. z:sub(1, half) .. "\r\n" ..
          string.format("%x\r\n", #z - half) .. z:sub(half + 1) .. "\r\n0\r\n\r\n"
    _, _, body = framed(raw)
    assert.equal(text, body)
  end)

  it("refuses corrupt or truncated gzip and gzip bombs", function()
    local z = gzip("hello world")
    local bad = z:sub(1, 10) .. "garbage" .. z:sub(18)
    local r, err = core.http_reply("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " .. #bad ..
                                   "\r\n\r\n" .. bad)
    assert.is_nil(r)
    assert.matches("gzip", err)
    local cut = z:sub(1, #z - 12)
    r, err = core.http_reply("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " .. #cut ..
                             "\r\n\r\n" .. cut)
    assert.is_nil(r)
    assert.matches("truncated", err)
    local bomb = gzip(string.rep("\0", 80 * 1024 * 1024))
    r, err = core.http_reply("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " .. #bomb ..
                             "\r\n\r\n" .. bomb)
    assert.is_nil(r)
    assert.matches("too large", err)
  end)

  it("skips interim 100 heads", function()
    local status, _, body = framed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert.equal(200, status)
    assert.equal("ok", body)
  end)

  it("gives the final head's headers after interim ones, and refuses too many or too long names", function()
    local status, h = framed("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\nX-Final: 2\r\n" ..
                             "Content-Length: 0\r\n\r\n")
    assert.equal(200, status)
    assert.is_nil(h["x-interim"])
    assert.equal("2", h["x-final"])
    local lines = {}
    for i = 1, 99 do lines[i] = "X-" .. i .. ": v\r\n" end
    local head = "HTTP/1.1 200 OK\r\n" .. table.concat(lines) .. "Content-Length: 0\r\n\r\n"
    status, h = core.http_reply(head)
    assert.equal(200, status)
    assert.equal("v", h["x-99"])
    local r, err = core.http_reply("HTTP/1.1 200 OK\r\nX-0: v\r\n" .. head:sub(18))
    assert.is_nil(r)
    assert.equal("too many reply headers", err)
    local long = string.rep("n", 256)
    r, err = core.http_reply("HTTP/1.1 200 OK\r\n" .. long .. ": v\r\nContent-Length: 0\r\n\r\n")
    assert.is_nil(r)
    assert.equal("reply header name too long", err)
    -- a long name in a skipped interim head does not matter
    status = core.http_reply("HTTP/1.1 100 Continue\r\n" .. long .. ": v\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert.equal(204, status)
    status, h = core.http_reply("HTTP/1.1 200 OK\r\n" .. long:sub(2) .. ": v\r\nContent-Length: 0\r\n\r\n")
    assert.equal(200, status)
    assert.equal("v", h[long:sub(2)])
  end)

  it("reads to the end of the connection when there is no length, and then does not keep it", function()
    local raw = "HTTP/1.0 200 OK\r\n\r\nuntil close"
    assert.is_false(core.http_reply(raw))
    local status, _, body, keep = core.http_reply(raw, true)
    assert.equal(200, status)
    assert.equal("until close", body)
    assert.is_false(keep)
  end)

  it("decides keep-alive from the version and Connection", function()
    local function keep(head) return select(4, core.http_reply(head .. "Content-Length: 0\r\n\r\n")) end
    assert.is_true(keep("HTTP/1.1 200 OK\r\n"))
    assert.is_false(keep("HTTP/1.1 200 OK\r\nConnection: close\r\n"))
    assert.is_false(keep("HTTP/1.0 200 OK\r\n"))
    assert.is_true(keep("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"))
    -- bytes beyond the reply: never reuse the connection
    assert.is_false(select(4, core.http_reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy")))
  end)

  it("has no body for HEAD, 204 and 304", function()
    assert.equal("", select(3, core.http_reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, true)))
    assert.equal("", select(3, core.http_reply("HTTP/1.1 204 No Content\r\n\r\n")))
    assert.equal("", select(3, core.http_reply("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")))
  end)

  it("returns nil, message for malformed replies and a short one at eof", function()
    local bad = {
      "SSH-2.0-OpenSSH\r\n\r\n", "HTTP/2 200\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFF\r\n",
      "HTTP/1.1 200 OK\r\nX: " .. string.rep("a", 70000),
      "HTTP/1.1 101 Switching Protocols\r\n\r\n",
    }
    for _, raw in ipairs(bad) do
      local r, err = core.http_reply(raw)
      assert.is_nil(r, raw:sub(1, 60))
      assert.is_string(err)
    end
    local r, err = core.http_reply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true)
    assert.is_nil(r)
    assert.matches("closed before", err)
    assert.is_nil((core.http_reply("HTTP/1.1 200", true)))
  end)

  it("never raises on arbitrary bytes", function()
    math.randomseed(18)
    local alphabet = { "HTTP/1.1 ", "200", " OK", "\r\n", "\n", ":", "Content-Length: 3", "Transfer-Encoding: chunked",
                       "0", "5", "abc", "\0", "\255", " ", "Content-Encoding: gzip" }
    for _ = 1, 3000 do
      local parts = {}
      for i = 1, math.random(1, 12) do parts[i] = alphabet[math.random(#alphabet)] end
      local raw = table.concat(parts)
      local ok, r = pcall(core.http_reply, raw, math.random() < 0.5)
      assert.is_true(ok, r)
    end
  end)

  it("checks its argument", function()
    assert.has_error(function() core.http_reply({}) end)
  end)
end)

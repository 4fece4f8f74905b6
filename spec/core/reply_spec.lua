local core = require "loyalty.core"

-- A provider's request-id headers (the client passes its provider's REQUEST_ID_HEADERS).
local IDS = { "x-cap-requestid", "x-cap-request-id", "x-request-id" }

describe("loyalty.core decode_reply", function()
  it("decodes the body and finds the request id under the provider's header", function()
    local headers = { ["x-cap-requestid"] = "5670FF17B7D58" }
    local reply = core.decode_reply(200, headers, '{"createdId":130713699,"warnings":[]}', nil, IDS)
    assert.equal(200, reply.status)
    assert.equal(headers, reply.headers)
    assert.equal("5670FF17B7D58", reply.request_id)
    assert.equal(130713699, reply.body.createdId)
    assert.is_nil(reply.retry_after)
  end)

  it("accepts the request id header variants and any casing", function()
    assert.equal("a", core.decode_reply(200, { ["X-CAP-REQUEST-ID"] = "a" }, "{}", nil, IDS).request_id)
    assert.equal("b", core.decode_reply(200, { ["x-request-id"] = "b" }, "{}", nil, IDS).request_id)
    assert.equal("c", core.decode_reply(200, { ["X-Cap-Requestid"] = { "c", "d" } }, "{}", nil, IDS).request_id)
    assert.equal("e", core.decode_reply(200, { ["x-cap-requestid"] = "e", ["x-request-id"] = "f" }, "{}", nil, IDS)
      .request_id)
    assert.is_nil(core.decode_reply(200, {}, "{}", nil, IDS).request_id)
  end)

  it("reads only the generic x-request-id without a list, and the list's order otherwise", function()
    local h = { ["x-cap-requestid"] = "cap", ["x-request-id"] = "generic", ["x-acme-id"] = "acme" }
    assert.equal("generic", core.decode_reply(200, h, "{}").request_id)
    assert.is_nil(core.decode_reply(200, { ["x-cap-requestid"] = "cap" }, "{}").request_id)
    assert.equal("acme", core.decode_reply(200, h, "{}", nil, { "x-acme-id", "x-request-id" }).request_id)
    assert.equal("generic", core.decode_reply(200, h, "{}", nil, { "x-none", "x-request-id" }).request_id)
    assert.has_error(function() core.decode_reply(200, h, "{}", nil, "x-request-id") end)
    assert.has_error(function() core.decode_reply(200, h, "{}", nil, { 5 }) end)
    -- a session (and perform_multi) takes the list as an option, checked once
    assert.has_error(function() core.session { request_id_headers = { "X-Upper" } } end)
    assert.has_error(function() core.session { request_id_headers = { "a", "b", "c", "d", "e" } } end)
    core.session({ request_id_headers = { "x-acme-id" } }):close()
  end)

  it("parses Retry-After as delta-seconds only", function()
    assert.equal(120, core.decode_reply(429, { ["retry-after"] = "120" }, "").retry_after)
    assert.equal(3, core.decode_reply(503, { ["Retry-After"] = " 3 " }, "").retry_after)
    assert.is_nil(core.decode_reply(503, { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" }, "").retry_after)
    assert.is_nil(core.decode_reply(503, { ["retry-after"] = "-1" }, "").retry_after)
  end)

  it("gives body nil for an empty or missing body", function()
    assert.is_nil(core.decode_reply(204, {}, "").body)
    assert.is_nil(core.decode_reply(204, {}, nil).body)
    assert.is_nil(core.decode_reply(204, {}).body)
  end)

  it("returns a decode error for an invalid body, whatever the content type", function()
    local reply, err = core.decode_reply(502, { ["content-type"] = "text/html", ["x-cap-requestid"] = "r1" },
      "<html>Bad Gateway</html>", nil, IDS)
    assert.is_nil(reply)
    assert.equal("decode", err.kind)
    assert.equal(502, err.status)
    assert.equal("r1", err.request_id)
    assert.equal("<html>Bad Gateway</html>", err.raw)
    assert.is_string(err.message)
  end)

  it("still decodes JSON sent with a non-JSON content type", function()
    local reply = core.decode_reply(200, { ["content-type"] = "text/plain" }, '{"ok":true}')
    assert.is_true(reply.body.ok)
  end)

  it("caps raw in decode errors", function()
    local _, err = core.decode_reply(500, {}, string.rep("z", 100), 8)
    assert.equal("zzzzzzzz", err.raw)
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.decode_reply("200", {}, "") end)
    assert.has_error(function() core.decode_reply(200, nil, "") end)
    assert.has_error(function() core.decode_reply(200, {}, {}) end)
  end)
end)

local core = require "loyalty.core"

describe("loyalty.core auth", function()
  it("builds the documented Capillary Basic header", function()
    assert.equal("Basic c3RvcmUuc2VydmVyOjhhMTZhNmI3MDUwNWViMWYxZmY3Y2RjMGNkNTU1OWE3",
      core.basic_auth("store.server", "server123"))
  end)

  it("has no space after the colon", function()
    assert.equal("Basic dGlsbDE6MjAyY2I5NjJhYzU5MDc1Yjk2NGIwNzE1MmQyMzRiNzA=", core.basic_auth("till1", "123"))
  end)

  it("exposes md5_hex and base64", function()
    assert.equal("8a16a6b70505eb1f1ff7cdc0cd5559a7", core.md5_hex("server123"))
    assert.equal("d41d8cd98f00b204e9800998ecf8427e", core.md5_hex(""))
    assert.equal("", core.base64(""))
    assert.equal("Zg==", core.base64("f"))
    assert.equal("Zm8=", core.base64("fo"))
    assert.equal("Zm9v", core.base64("foo"))
    assert.equal("AP8=", core.base64("\0\255"))
  end)

  it("handles long user names", function()
    local user = string.rep("u", 5000)
    local header = core.basic_auth(user, "p")
    assert.equal("Basic " .. core.base64(user .. ":" .. core.md5_hex("p")), header)
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.basic_auth(nil, "x") end)
    assert.has_error(function() core.basic_auth("u", {}) end)
    assert.has_error(function() core.md5_hex() end)
    assert.has_error(function() core.base64(true) end)
  end)
end)

-- The sandbox over HTTPS (sandbox.start{tls = {cert, key}}): the same API on the next port, and the
-- client verifying it against the given CA file only.
local support = require("support.sandbox")
local runner = require("loyalty.ngx.runner")
local loyalty = require("loyalty")

local LOOKUP = { source = "INSTORE", identifierName = "mobile", identifierValue = support.TOM.mobile }

describe("sandbox over TLS", function()
  local sb, certdir

  lazy_setup(function()
    local p = assert(io.popen("mktemp -d /tmp/loyalty-sb-cert.XXXXXX"))
    certdir = p:read("*l")
    p:close()
    assert(runner.run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
      .. " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " .. certdir .. "/key.pem -out "
      .. certdir .. "/cert.pem 2>/dev/null"), "openssl failed")
    sb = support.start { tls = { cert = certdir .. "/cert.pem", key = certdir .. "/key.pem" } }
  end)

  lazy_teardown(function()
    if sb then sb:stop() end
    if certdir then runner.run("rm -rf " .. runner.shell_quote(certdir)) end
  end)

  local function client(url, extra)
    local opts = { base_url = url, username = "store.server", password = "server123", max_attempts = 1 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(loyalty.client(opts))
  end

  it("serves the API over HTTPS on the next port, plain HTTP staying where it was", function()
    assert.equal("https://127.0.0.1:" .. (sb.port + 1), sb.tls_url)
    local tls = client(sb.tls_url, { ca_file = certdir .. "/cert.pem" })
    local plain = client(sb.url)
    local a = assert(tls:v2_customer_lookup(LOOKUP))
    local b = assert(plain:v2_customer_lookup(LOOKUP))
    assert.equal(b.customer_id, a.customer_id)
    for _ = 1, 3 do assert(tls:v2_customer_lookup(LOOKUP)) end
    assert.equal(1, tls.transport:stats().connects) -- one TLS session for every call
    tls:close()
    plain:close()
  end)

  it("is refused without the CA that signed it", function()
    local c = client(sb.tls_url)
    local r, err = c:v2_customer_lookup(LOOKUP)
    assert.is_nil(r)
    assert.equal("tls", err.kind)
    c:close()
  end)

  it("has no TLS listener unless asked", function()
    local other = support.start()
    assert.is_nil(other.tls_url)
    other:stop()
  end)
end)

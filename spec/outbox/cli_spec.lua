-- `loyalty outbox drain|status|retry` against the sandbox, with a store settings file.
local cli = require "loyalty.cli.outbox"
local loyalty = require "loyalty"
local support = require "support.sandbox"
local proc = require "outbox.helpers.proc"

local function buffer()
  local b = { parts = {} }
  function b.write(self, s) self.parts[#self.parts + 1] = s end
  function b.text(self) return table.concat(self.parts) end
  return b
end

local function run(args)
  local out, err = buffer(), buffer()
  local code = cli.main(args, out, err)
  return code, out:text(), err:text()
end

describe("loyalty outbox (cli)", function()
  local sb, dir, conf

  lazy_setup(function()
    sb = support.start()
    dir = proc.tmpdir()
    conf = dir .. "/store.conf.lua"
    local f = assert(io.open(conf, "w"))
    f:write(([[
return {
  crm = { base_url = %q, username = "store.server", password = env("SPEC_TILL_PASSWORD", "server123"),
          max_attempts = 1 },
  outbox = { backend = "sqlite", path = %q, always = true, max_attempts = 2, backoff_base_s = 0.01 },
}
]]):format(sb.url, dir .. "/outbox.db"))
    f:close()
  end)
  lazy_teardown(function()
    if sb then sb:stop() end
    proc.rmdir(dir)
  end)

  it("has help for every subcommand and refuses unknown ones", function()
    for _, sub in ipairs { "drain", "status", "retry" } do
      local code, out = run { sub, "--help" }
      assert.equals(0, code)
      assert.matches("Usage: loyalty outbox " .. sub, out)
    end
    local code, out = run { "--help" }
    assert.equals(0, code)
    assert.matches("drain", out)
    code = run {}
    assert.equals(2, code)
    local _, _, err = run { "explode" }
    assert.matches("unknown command 'explode'", err, 1, true)
    code, _, err = run { "drain", "--bogus" }
    assert.equals(2, code)
    assert.matches("unknown option", err)
  end)

  it("a settings file without an outbox is an error, not a crash", function()
    local plain = dir .. "/plain.conf.lua"
    local f = assert(io.open(plain, "w"))
    f:write(("return { crm = { base_url = %q, username = 'store.server', password = 'server123' } }"):format(sb.url))
    f:close()
    local code, _, err = run { "status", "--config", plain }
    assert.equals(1, code)
    assert.matches("no `outbox` setting", err)
    code, _, err = run { "status", "--config", dir .. "/missing.lua" }
    assert.equals(1, code)
    assert.matches("cannot read", err)
  end)

  it("status, drain --once, dead letters and retry", function()
    local p = assert(loyalty.program(conf))
    local user = { mobile = "919999000001" }
    local lines = { { sku = "A", qty = 1, price = 100, amount = 100 } }
    assert(p:order_placed(user, { id = "CLI-1", total = 100, lines = lines }))
    assert(p:order_placed(user, { id = "CLI-2", total = 100, lines = lines }))
    p:close()

    local code, out = run { "status", "--config", conf }
    assert.equals(0, code)
    assert.matches("2 pending, 0 delivered %(kept 3 days%), 0 dead", out)
    assert.matches("oldest pending: #1 transaction_add mobile:919999000001 CLI%-1", out)

    -- The CRM refuses the first for good (an API error): it goes dead; the second is delivered.
    assert(sb:faults { match = "/v1.1/transaction/add", count = 1, action = "body_failure", code = 611 })
    code, out = run { "drain", "--config", conf, "--once" }
    assert.equals(0, code)
    assert.matches("dead: #1", out)
    code, out = run { "status", "--config", conf }
    assert.equals(3, code)
    assert.matches("0 pending, 1 delivered %(kept 3 days%), 1 dead", out)
    assert.matches("611", out)
    assert.is_nil(out:find("server123", 1, true))

    code, out = run { "retry", "1", "--config", conf }
    assert.equals(0, code)
    assert.matches("back in line", out)
    code = run { "drain", "--config", conf, "--once", "--quiet" }
    assert.equals(0, code)
    code, out = run { "status", "--config", conf }
    assert.equals(0, code)
    assert.matches("0 pending, 2 delivered %(kept 3 days%), 0 dead", out)
    local numbers = {}
    for _, t in ipairs(sb:state().transactions) do numbers[#numbers + 1] = t.number end
    table.sort(numbers)
    assert.same({ "CLI-1", "CLI-2" }, numbers)

    local _, err
    code, _, err = run { "retry", "99", "--config", conf }
    assert.equals(1, code)
    assert.matches("no dead or pending entry #99", err)
    code, _, err = run { "retry", "--config", conf }
    assert.equals(2, code)
    assert.matches("missing argument 'id'", err, 1, true)
    code, _, err = run { "retry", "one", "--config", conf }
    assert.equals(2, code)
    assert.matches("ID needs a whole number, got 'one'", err, 1, true)
  end)
end)

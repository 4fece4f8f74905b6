-- `rules explain --crm` (issue 20): the CRM's own dry-run answer beside the rules' arithmetic, on the sandbox.
local H = require("rules.helper")
local support = require("support.sandbox")
local crm_preview = require("loyalty.rules.crm_preview")

local function run(args)
  local out = os.tmpname()
  local vm = type(rawget(_G, "jit")) == "table" and "luajit" or "lua5.4"
  local a, _, c = os.execute(vm .. " ./bin/loyalty " .. args .. " >" .. out .. " 2>&1")
  local text = H.read(out)
  os.remove(out)
  return type(a) == "number" and a / 256 or c, text
end

describe("rules explain --crm", function()
  local sb, dir

  lazy_setup(function()
    sb = support.start()
    dir = H.dir()
    H.write(dir .. "/crmcom.conf.lua", ('return { provider = "crmcom", crm = { base_url = %q, ' ..
      'username = "pos.user", password = "pos123", organisation = "SANDBOXORG", unit = "UNIT-LIMASSOL" }, ' ..
      'identifier = "mobile" }')
      :format(sb.url .. "/crmapi/rest/v2"))
    H.write(dir .. "/capillary.conf.lua", ('return { crm = { base_url = %q, username = "store.server", ' ..
      'password = "server123" } }'):format(sb.url))
  end)
  lazy_teardown(function()
    if sb then sb:stop() end
    H.cleanup()
  end)

  it("prints the CRM.COM preview's award and spendable amount beside the rules' own, booking nothing", function()
    local before = #assert(sb:crmcom_state()).purchases
    local code, text = run("rules explain examples/rules examples/rules/sample-cart.json --crm " .. dir ..
      "/crmcom.conf.lua --customer 35799000021")
    assert.equal(0, code, text)
    -- the figures are the CRM's: the same preview asked directly
    local program = assert(require("loyalty").program(dir .. "/crmcom.conf.lua"))
    local cart = require("cjson").decode(H.read("examples/rules/sample-cart.json")).cart
    local p = assert(crm_preview.preview(program, { mobile = "35799000021" }, cart))
    program:close()
    assert.truthy(text:find(string.format("award:       CRM %.2f; rules 1290 points = 322.50", p.award), 1, true),
      text)
    assert.truthy(text:find(string.format("spendable:   CRM %.2f now (wallet %.2f", p.eligible_spend,
      p.wallet_balance), 1, true), text)
    if math.abs(p.award - 322.5) >= 0.005 then assert.truthy(text:find("DIFFERENT", 1, true), text) end
    assert.equal(before, #assert(sb:crmcom_state()).purchases, "a preview must not book a purchase")
  end)

  it("refuses a provider without a documented dry run, and --crm without --customer", function()
    local code, text = run("rules explain examples/rules examples/rules/sample-cart.json --crm " .. dir ..
      "/capillary.conf.lua --customer 919999000001")
    assert.equal(2, code, text)
    assert.truthy(text:find("documents no dry run", 1, true), text)
    code, text = run("rules explain examples/rules examples/rules/sample-cart.json --crm " .. dir ..
      "/crmcom.conf.lua")
    assert.equal(2, code, text)
    assert.truthy(text:find("--customer", 1, true), text)
  end)

  it("exits 1 when the CRM does not know the customer", function()
    local code, text = run("rules explain examples/rules examples/rules/sample-cart.json --crm " .. dir ..
      "/crmcom.conf.lua --customer 35700000000")
    assert.equal(1, code, text)
    assert.truthy(text:find("the CRM did not answer", 1, true), text)
  end)
end)

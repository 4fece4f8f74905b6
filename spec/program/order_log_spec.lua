-- The order log (issue 20): every posted order as one JSON line, nothing secret or personal beyond the identifier.
local loyalty = require "loyalty"
local support = require "support.sandbox"
local cjson = require "cjson"

local RULES = "examples/rules"

local function read_lines(path)
  local out = {}
  local f = io.open(path, "rb")
  if not f then return out end
  for line in f:lines() do out[#out + 1] = line end
  f:close()
  return out
end

describe("loyalty.program order log", function()
  local sb, dir

  lazy_setup(function()
    sb = support.start()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
  end)
  lazy_teardown(function()
    if sb then sb:stop() end
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)
  before_each(function() assert(sb:reset()) end)

  local function program(log, extra)
    local s = {
      crm = { base_url = sb.url, username = "store.server", password = "server123", sleep = function() end },
      rules = RULES, order_log = log,
    }
    for k, v in pairs(extra or {}) do s[k] = v end
    return assert(loyalty.program(s))
  end

  local TOM = { mobile = "+91 99990 00001", firstname = "Thomas", lastname = "Quill", email = "tom@example.org",
    tier = "gold" }

  local function order(id)
    return { id = id, total = 2597, lines = {
      { sku = "PHONE-CASE", qty = 1, price = 1998, amount = 1998, name = "Blue case for Thomas",
        categories = { "mobiles", "electronics" } },
      { sku = "SK-TSHIRT-M", qty = 1, price = 599, amount = 599, categories = { "fashion" } },
    } }
  end

  it("appends one line per posted order: cart, tier, rules hash, estimate, CRM award, request ids", function()
    local path = dir .. "/orders.jsonl"
    local p = program { path = path }
    local results = {}
    for i = 1, 3 do results[i] = assert(p:order_placed(TOM, order("L-" .. i))) end
    local lines = read_lines(path)
    assert.equals(3, #lines)
    local rs = p:ruleset()
    for i, line in ipairs(lines) do
      local rec = cjson.decode(line)
      assert.equals(1, rec.v)
      assert.equals("L-" .. i, rec.order_id)
      assert.equals("GOLD", rec.tier)
      assert.equals(rs.hash, rec.rules_hash)
      assert.equals(results[i].estimate, rec.estimate)
      assert.equals(rs:earn({ tier = "GOLD" }, order("x")).points, rec.estimate)
      assert.equals(results[i].points_earned, rec.awarded)
      assert.equals(2, #rec.cart.lines)
      assert.equals(1998, rec.cart.lines[1].amount)
      assert.same({ "mobiles", "electronics" }, rec.cart.lines[1].categories)
      assert.equals("INR", rec.cart.currency)
      assert.equals("mobile:919999000001", rec.customer)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", rec.at)
      assert.is_string(results[i].request_id)
      assert.same(results[i].request_ids, rec.request_ids) -- every CRM call behind the order, once each
      assert.truthy(#rec.request_ids >= 1)
      -- nothing about the shopper but the identifier: no name, email or line titles
      for _, secret in ipairs({ "Thomas", "Quill", "tom@example.org", "server123", "store.server" }) do
        assert.falsy(line:find(secret, 1, true), secret .. " leaked into the order log")
      end
    end
    p:close()
  end)

  it("hashes the customer identifier with a salt when asked", function()
    local path = dir .. "/hashed.jsonl"
    local p = program { path = path, hash_customer = true, salt = "pepper-and-salt" }
    assert(p:order_placed(TOM, order("H-1")))
    assert(p:order_placed(TOM, order("H-2")))
    local lines = read_lines(path)
    local a, b = cjson.decode(lines[1]), cjson.decode(lines[2])
    assert.matches("^md5:%x+$", a.customer)
    assert.equals(a.customer, b.customer)
    assert.falsy(lines[1]:find("9999000001", 1, true))
    assert.falsy(lines[1]:find("pepper", 1, true))
    p:close()
  end)

  it("rotates by size and keeps every order in path, path.1 ... path.keep", function()
    local path = dir .. "/rot.jsonl"
    local p = program { path = path, max_bytes = 1024, keep = 20 }
    for i = 1, 8 do assert(p:order_placed(TOM, order("R-" .. i))) end
    local seen, files = {}, { path }
    for i = 1, 20 do files[#files + 1] = path .. "." .. i end
    for _, f in ipairs(files) do
      local fh = io.open(f, "rb")
      if fh then
        assert.is_true(fh:seek("end") <= 1024, f .. " is above max_bytes")
        fh:close()
      end
      for _, line in ipairs(read_lines(f)) do seen[cjson.decode(line).order_id] = true end
    end
    for i = 1, 8 do assert.is_true(seen["R-" .. i], "R-" .. i .. " is missing") end
    assert.truthy(io.open(path .. ".1", "rb"))
    p:close()
  end)

  it("never fails an order when the log cannot be written; the fault goes to the log sink", function()
    local events = {}
    local p = program({ path = dir .. "/no/such/dir/orders.jsonl" },
      { log = function(level, event, fields) events[#events + 1] = { level, event, fields } end })
    local r = assert(p:order_placed(TOM, order("F-1")))
    assert.is_number(r.points_earned)
    local found = false
    for _, e in ipairs(events) do if e[2] == "order_log_failed" then found = true end end
    assert.is_true(found)
    p:close()
  end)

  it("refuses unknown keys and a hash without a salt, naming the key", function()
    local s = { crm = { base_url = sb.url, username = "store.server", password = "server123" } }
    s.order_log = { path = dir .. "/x", max_byte = 10 }
    local p, err = loyalty.program(s)
    assert.is_nil(p)
    assert.equals("order_log.max_byte", err.key)
    s.order_log = { path = dir .. "/x", hash_customer = true }
    p, err = loyalty.program(s)
    assert.is_nil(p)
    assert.equals("order_log.salt", err.key)
    s.order_log = {}
    p, err = loyalty.program(s)
    assert.is_nil(p)
    assert.equals("order_log.path", err.key)
  end)
end)

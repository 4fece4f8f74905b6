-- Nothing the shopper typed or bought can stop an order from being posted or queued: names, SKUs,
-- notes and addresses that look like headers, tokens, JSON, SQL or shell reach the CRM exactly
-- once, with the CRM up, down (queued, then drained) and with outbox.always; a failure to store
-- an entry is a storage error returned with the order id, never a raise.
local drainer = require "loyalty.outbox.drainer"
local programs = require "outbox.helpers.programs"

local TX = "/v1.1/transaction/add"

local HOSTILE = {
  "Basic Tee", "Basic dGlsbDpzZWNyZXQ=", "Authorization: Basic c3RvcmU6eHl6", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
  "X-Injected: 1\r\nHost: evil.example", "token=abc&client_secret=def", "password", "accessToken",
  '{"password": "hunter22", "token": "x"}', '"},{"number":"HACK","amount":1}', "'; DROP TABLE loyalty_outbox; --",
  "Robert'); DELETE FROM loyalty_outbox WHERE ('1'='1", "$(rm -rf /tmp/x)", "`id`", "a | cat /etc/passwd; echo",
  "%s%n%x%d", "[REDACTED]", "ünïcødé ✓ 𝄞", "nul\0byte", ("long "):rep(400),
}

describe("hostile order data", function()
  local ctx = programs.new()
  ctx.use()
  local sb
  before_each(function() sb = ctx.sb end)

  local function program(always)
    return ctx.program({ always = always }, { timeout_ms = 3000 })
  end

  local function order(id, text)
    return {
      id = id, total = 1000, gross = 1000, notes = text, shipping_address = { line1 = text, city = text },
      lines = { { sku = "SKU-" .. text:sub(1, 40), name = text, qty = 1, price = 500, amount = 500 },
                { sku = "SK-TSHIRT-M", name = "Basic Tee", qty = 1, price = 500, amount = 500 } },
    }
  end

  local function user(text)
    return { mobile = "919999000001", firstname = text, lastname = text, email = "tom@example.com", address = text }
  end

  local function drain(p)
    local later = p.outbox.clock() + 3600
    assert(drainer.run(p, p.outbox, { clock = function() return later end, sleep = function() end }))
    local st = assert(p.outbox:status())
    assert.equals(0, st.counts.pending)
    assert.equals(0, st.counts.dead)
  end

  for _, mode in ipairs { "up", "down", "always" } do
    it("CRM " .. mode .. ": every order reaches the CRM exactly once", function()
      local p = program(mode == "always")
      if mode == "down" then assert(sb:faults { match = TX, status = 503, count = 1000 }) end
      local placed = {}
      for i, text in ipairs(HOSTILE) do
        local id = "OD-" .. mode .. "-" .. i
        local ok, r, err = pcall(p.order_placed, p, user(text), order(id, text))
        assert(ok, "raised: " .. tostring(r))
        assert(r, "order " .. i .. " refused: " .. tostring(err))
        if mode == "up" then
          assert.is_nil(r.queued)
        else
          assert.is_true(r.queued)
        end
        placed[#placed + 1] = id
      end
      if mode == "down" then assert(sb:clear_faults()) end
      if mode ~= "up" then drain(p) end
      p:close()
      for i, id in ipairs(placed) do assert.equals(1, sb:bills(id), "order " .. i) end
      -- What the shopper typed arrived as typed.
      local seen = {}
      for _, t in ipairs(assert(sb:state()).transactions) do
        for _, l in ipairs(t.line_items or {}) do seen[l.description or ""] = true end
      end
      for i, text in ipairs(HOSTILE) do assert.is_true(seen[text] == true, "line name " .. i) end
    end)
  end

  it("an outbox that cannot store the entry: a storage error with the order id, never a raise", function()
    local p = program(true)
    p.outbox.put = function() error("disk on fire") end
    local ok, r, err = pcall(p.order_placed, p, user("x"), order("OD-S1", "Basic Tee"))
    assert.is_true(ok)
    assert.is_nil(r)
    assert.equals("storage", err.kind)
    assert.equals("OD-S1", err.order_id)
    p:close()
  end)
end)

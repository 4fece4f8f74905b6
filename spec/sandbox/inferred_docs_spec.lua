-- Every guess of the sandbox and the providers is listed in docs/sandbox.md, by its key.
describe("inferred files", function()
  local f = assert(io.open("docs/sandbox.md"))
  local doc = f:read("*a")
  f:close()
  for _, m in ipairs { "loyalty.sandbox.capillary.inferred", "loyalty.sandbox.crmcom.inferred",
                       "loyalty.providers.crmcom.inferred", "loyalty.providers.capillary.inferred" } do
    it(m .. ": every key is in docs/sandbox.md", function()
      local t = require(m)
      local n = 0
      for key in pairs(t) do
        n = n + 1
        assert.is_truthy(doc:find("`" .. key .. "`", 1, true), key .. " of " .. m .. " is not in docs/sandbox.md")
      end
      assert.is_true(n > 0)
    end)
  end
end)

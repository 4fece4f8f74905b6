-- Every examples/*.lua a newcomer may run by hand answers in plain words, never a traceback.
describe("examples run by hand", function()
  it("examples/walk.lua (the demos' helper) says which demo to run, exit 2, no traceback", function()
    for _, vm in ipairs { "lua5.4", "luajit" } do
      local p = assert(io.popen(vm .. " examples/walk.lua 2>&1; echo \"rc=$?\""))
      local out = p:read("*a")
      p:close()
      assert.matches("rc=2", out, 1, true)
      assert.matches("make demo", out, 1, true)
      assert.is_nil(out:find("traceback", 1, true), out)
    end
  end)
end)

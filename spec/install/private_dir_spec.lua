-- A checkout under a 0700 directory (root's home, mktemp -d): the sandbox's private nginx must
-- answer from there, its workers running as the invoking user. Runs a copy of the tree.
local runner = require "loyalty.ngx.runner"
local q = runner.shell_quote

local function capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

describe("a checkout in a private (0700) directory", function()
  local root = runner.tree_root()
  local dir

  lazy_setup(function()
    dir = capture("mktemp -d"):match("%S+")
    assert(runner.run("chmod 700 " .. q(dir)))
    local copy = dir .. "/clone"
    assert(runner.run("mkdir -p " .. q(copy .. "/build") .. " && cp -R " .. q(root .. "/lua") .. " " ..
      q(root .. "/bin") .. " " .. q(root .. "/examples") .. " " .. q(copy) .. " && cp -R " ..
      q(root .. "/build/5.1") .. " " .. q(root .. "/build/5.4") .. " " .. q(copy .. "/build")))
  end)

  lazy_teardown(function()
    if dir then runner.run("rm -rf " .. q(dir)) end
  end)

  it("is really private", function()
    assert.equal("700", capture("stat -c %a " .. q(dir)):match("%d+"))
  end)

  for _, vm in ipairs { "lua5.4", "luajit" } do
    it("starts the sandbox, which answers from it (" .. vm .. ")", function()
      local copy = dir .. "/clone"
      local ver = vm == "luajit" and "5.1" or "5.4"
      -- A child VM that sees only the copy: start, one v1.1 call through a worker, stop.
      local script = table.concat({
        "package.path = " .. string.format("%q", copy .. "/lua/?.lua;" .. copy .. "/lua/?/init.lua;")
          .. " .. package.path",
        "package.cpath = " .. string.format("%q", copy .. "/build/" .. ver .. "/?.so;") .. " .. package.cpath",
        "local sb = assert(require('loyalty.sandbox').start{})",
        "local c = assert(require('loyalty').client{ base_url = sb.url, username = 'store.server',",
        "  password = 'server123', max_attempts = 1 })",
        "local r, err = c:customer_get{ mobile = '919999000001' }",
        "local where = require('loyalty.ngx.runner').tree_root()",
        "sb:stop()",
        "print(r and r.customer and r.customer.firstname or ('failed: ' .. tostring(err)), where)",
      }, "\n")
      local out = capture("cd / && " .. vm .. " -e " .. q(script) .. " 2>&1")
      assert.equal("Tom\t" .. copy, out:match("^(.-)%s*$"))
    end)
  end

  it("as an ordinary user too, from that user's own 0700 directory", function()
    if capture("id -u"):match("%d+") ~= "0" or not runner.run("command -v setpriv >/dev/null 2>&1") then
      return pending("needs root (to become nobody) and setpriv")
    end
    local mine = dir .. "/nobody"
    assert(runner.run("cp -R " .. q(dir .. "/clone") .. " " .. q(mine) .. " && chown -R nobody " .. q(mine)
                      .. " && chmod 700 " .. q(mine) .. " && chmod 711 " .. q(dir)))
    local vm = type(jit) == "table" and "luajit" or "lua5.4"
    local ver = vm == "luajit" and "5.1" or "5.4"
    local script = table.concat({
      "package.path = " .. string.format("%q", mine .. "/lua/?.lua;" .. mine .. "/lua/?/init.lua;")
        .. " .. package.path",
      "package.cpath = " .. string.format("%q", mine .. "/build/" .. ver .. "/?.so;") .. " .. package.cpath",
      "local sb = assert(require('loyalty.sandbox').start{})",
      "local st = sb:state()",
      "sb:stop()",
      "print(st and 'answered', io.popen('id -un'):read('*l'))",
    }, "\n")
    local out = capture("cd / && setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH=\"$PATH\" "
                        .. vm .. " -e " .. q(script) .. " 2>&1")
    assert(runner.run("chmod 700 " .. q(dir)))
    assert.equal("answered\tnobody", out:match("^(.-)%s*$"))
  end)

  it("runs the demo from it", function()
    local out = capture("cd / && lua5.4 " .. q(dir .. "/clone/examples/checkout.lua") .. " 2>&1")
    assert.truthy(out:find("Every step succeeded.", 1, true), out)
  end)
end)

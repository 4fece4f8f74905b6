-- What the demo walks share: in-tree module paths, numbered steps, and stopping at the first
-- failed step. Load it with: local walk = assert(loadfile(root .. "/examples/walk.lua"))(root)
local root = ...
if type(root) ~= "string" then -- run directly by someone trying the examples
  io.stderr:write("examples/walk.lua is the demos' shared helper, not a demo: run `make demo`, ",
                  "`lua5.4 examples/checkout.lua` or `lua5.4 examples/crmcom-checkout.lua`\n")
  os.exit(2)
end
local ver = type(jit) == "table" and "5.1" or _VERSION:match("5%.%d")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/" .. ver .. "/?.so;" .. package.cpath

local walk = {}
local step = 0
local cleanup = function() end

function walk.say(fmt, ...) io.write(string.format(fmt, ...), "\n") end

function walk.next_step()
  step = step + 1
  return step
end

--- What to undo (stop the sandbox) when a step fails.
function walk.on_failure(fn) cleanup = fn end

-- Every step must succeed; the first failure stops the walk with a non-zero exit.
function walk.must(what, value, err)
  if value == nil then
    walk.say("FAILED at %q: %s", what, tostring(err))
    cleanup()
    os.exit(1)
  end
  return value
end

function walk.check(what, ok, detail)
  if not ok then walk.must(what, nil, detail) end
end

return walk

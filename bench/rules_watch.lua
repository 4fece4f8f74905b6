-- What the rules watcher costs when nothing changed: one Watcher:check() on a copy of
-- examples/rules (4 rule files, the fixtures folder and its files), files older than the
-- two-second racy window. Target: <= 20 us per check. Interleaved rounds; best and median.
--   lua5.4 bench/rules_watch.lua   |   luajit bench/rules_watch.lua   (from the checkout root)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (jit and "build/5.1/?.so;" or "build/5.4/?.so;") .. package.cpath

local rules = require "loyalty.rules"
local files = require "loyalty.rules.files"

local N, ROUNDS = 20000, 7
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "' && cp -r examples/rules/. '" .. dir .. "'"))
local old = os.time() - 60
local function age(path)
  files.lfs.touch(path, old, old)
  if files.lfs.attributes(path, "mode") == "directory" then
    for name in files.lfs.dir(path) do
      if name ~= "." and name ~= ".." then age(path .. "/" .. name) end
    end
  end
end
age(dir)

local w = rules.watch(dir)
assert(w:current(), "examples/rules did not load")
local clock = os.clock
local per = {}
for r = 1, ROUNDS do
  local t0 = clock()
  for _ = 1, N do w:check() end
  per[r] = (clock() - t0) / N * 1e6
end
assert(w.reloads == 1, "the bench's files changed under it")
table.sort(per)
print(string.format("rules watcher, no change (%s, %d paths stat-ed per check): best %.2f us, median %.2f us"
                    .. " per check (target <= 20)", jit and jit.version or _VERSION, #w.paths, per[1],
                    per[math.ceil(ROUNDS / 2)]))
os.execute("rm -rf '" .. dir .. "'")

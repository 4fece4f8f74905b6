-- loyalty.env outside nginx, and the rule that it is the only code asking whether it runs in
-- nginx or may yield: code under lua/loyalty/ngx/ (nginx code) and the sandbox (an nginx app) may
-- use the ngx API without testing for it; nothing else may touch ngx. The nginx side is
-- spec/nginx/env_spec.lua.
local env = require "loyalty.env"
local core = require "loyalty.core"
local lfs = require "lfs"

describe("loyalty.env outside nginx", function()
  it("says so, and offers nothing nginx-only", function()
    assert.is_false(env.in_nginx)
    assert.is_nil(env.phase())
    assert.is_false(env.can_yield())
    assert.is_nil(env.tcp())
    assert.is_nil(env.worker_pid())
  end)

  it("sleeps by blocking, on the monotonic clock", function()
    local t0 = env.now()
    env.sleep(0.05)
    assert.is_true(env.now() - t0 >= 0.045)
    assert.equal(core.now, env.now)
  end)

  it("gives wall-clock time in seconds and milliseconds", function()
    assert.is_true(math.abs(env.time() - os.time()) <= 1)
    assert.is_true(math.abs(env.time_ms() / 1000 - os.time()) <= 1)
    assert.is_true(math.abs(env.wall_time() - os.time()) <= 1)
  end)
end)

-- Code with comments removed (a rough cut: a "--" inside a string would end the line early,
-- which only hides code from the check, never invents a finding).
local function code_lines(path)
  local out = {}
  local f = assert(io.open(path, "rb"))
  local n = 0
  for line in f:lines() do
    n = n + 1
    out[n] = (line:gsub("%-%-.*$", ""))
  end
  f:close()
  return out
end

local PROBES = {
  "type%s*%(%s*ngx%s*%)",              -- type(ngx) == "table"
  "ngx%.get_phase",                    -- phase tests
  "rawget%s*%(%s*_G%s*,%s*[\"']ngx",   -- rawget(_G, "ngx")
  "%f[%w_%.]ngx%.[%a_][%w_]*%s*[%(%[]", -- ngx.sleep(...), ngx.shared[...] on the global
}

local function findings(lines, path, probes)
  local out = {}
  for i, line in ipairs(lines) do
    for _, p in ipairs(probes or PROBES) do
      if line:find(p) then out[#out + 1] = path .. ":" .. i .. ": " .. line break end
    end
  end
  return out
end

local function lua_files(dir, into)
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then
      local p = dir .. "/" .. name
      if lfs.attributes(p, "mode") == "directory" then
        lua_files(p, into)
      elseif name:match("%.lua$") then
        into[#into + 1] = p
      end
    end
  end
  return into
end

local EXEMPT = { "^lua/loyalty/env%.lua$", "^lua/loyalty/ngx/", "^lua/loyalty/sandbox/" }

describe("looking at ngx", function()
  it("the probes catch each form of the test", function()
    local sample = {
      'local in_nginx = type(ngx) == "table"', "if ngx.get_phase() ~= 'init' then", 'local ngx = rawget(_G, "ngx")',
      "  return ngx.sleep(s)", "local d = ngx.shared[name]",
      'local t = require("loyalty.ngx.transport")', "-- ngx.sleep(s) in a comment",
    }
    for i, line in ipairs(sample) do sample[i] = (line:gsub("%-%-.*$", "")) end
    assert.equal(5, #findings(sample, "sample"))
  end)

  it("happens only in loyalty.env (and nginx code under lua/loyalty/ngx/ and the sandbox)", function()
    local found = {}
    local files = lua_files("lua", { "bin/loyalty", "bin/loyalty-sandbox" })
    for _, path in ipairs(files) do
      local exempt = false
      for _, e in ipairs(EXEMPT) do exempt = exempt or path:find(e) ~= nil end
      if not exempt then
        for _, f in ipairs(findings(code_lines(path), path)) do found[#found + 1] = f end
      end
    end
    assert.is_true(#files > 50)
    assert.same({}, found)
  end)

  it("nginx code uses the ngx API but never tests whether it runs in nginx or may yield", function()
    local found = {}
    local tests = { PROBES[1], PROBES[2], PROBES[3] }
    for _, dir in ipairs { "lua/loyalty/ngx", "lua/loyalty/sandbox" } do
      for _, path in ipairs(lua_files(dir, {})) do
        for _, f in ipairs(findings(code_lines(path), path, tests)) do found[#found + 1] = f end
      end
    end
    assert.same({}, found)
  end)
end)

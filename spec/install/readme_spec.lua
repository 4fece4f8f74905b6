-- The README runs as written: every ```sh and ```lua block is run here, in order, as one shell
-- session from the checkout's root (the sandbox `make sandbox` starts is started here, on a free
-- port), unless a `<!-- readme-spec: ... -->` line above it says what else to check. Every
-- `loyalty ...` command in README.md and docs/ must parse.
local runner = require "loyalty.ngx.runner"
local support = require "support.sandbox"
local cli = require "loyalty.cli"

local root = runner.tree_root()
local JIT = type(jit) == "table"

local function blocks(path)
  local text = assert(runner.read_file(path))
  local out, marker, cur = {}, nil, nil
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if cur then
      if line:match("^```%s*$") then
        out[#out + 1] = cur
        cur = nil
      else
        cur.lines[#cur.lines + 1] = line
      end
    else
      local lang = line:match("^```(%w*)%s*$")
      if lang then
        cur = { lang = lang, marker = marker, lines = {} }
        marker = nil
      elseif line:match("^<!%-%- readme%-spec:") then
        marker = line:match("^<!%-%- readme%-spec:%s*(.-)%s*%-%->$")
      elseif line:match("%S") then
        marker = nil
      end
    end
  end
  assert(not cur, path .. ": a ``` block is not closed")
  return out
end

local function capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  return out:gsub("rc=(%d+)%s*$", ""), tonumber(out:match("rc=(%d+)%s*$"))
end

-- Runs a chunk of Lua settings text in an empty environment: its globals.
local function settings(text, name)
  local env = {}
  local chunk
  if setfenv then -- luacheck: ignore setfenv
    chunk = assert(loadstring(text, name)) -- luacheck: ignore loadstring
    setfenv(chunk, env) -- luacheck: ignore setfenv
  else
    chunk = assert(load(text, name, "t", env))
  end
  chunk()
  return env
end

-- Every key of `sub` has the same value in `full` (tables: recursively, as a subset).
local function subset(sub, full, path)
  for k, v in pairs(sub) do
    local where = path .. "." .. tostring(k)
    if type(v) == "table" then
      assert(type(full[k]) == "table", where .. " is not a table in the file")
      subset(v, full[k], where)
    else
      assert(full[k] == v, where .. ": README says " .. tostring(v) .. ", the file " .. tostring(full[k]))
    end
  end
end

describe("README.md", function()
  local all = blocks(root .. "/README.md")
  local sb, tmp

  lazy_setup(function()
    sb = support.start()
    tmp = capture("mktemp -d"):match("%S+")
  end)
  lazy_teardown(function()
    if sb then sb:stop() end
    if tmp then runner.run("rm -rf " .. runner.shell_quote(tmp)) end
  end)

  it("says for every sh/lua block whether and how it is checked", function()
    local code = 0
    for _, b in ipairs(all) do
      if b.lang == "sh" or b.lang == "lua" then
        code = code + 1
        local m = b.marker
        assert(m == nil or m:match("^norun %(.+%)$") or m:match("^sandbox") or m:match("^file %S+$")
               or m:match("^output .+$"), "unknown readme-spec marker: " .. tostring(m))
      end
    end
    assert.truthy(code >= 5)
  end)

  it("runs its shell and Lua blocks, in order, as one session against the sandbox", function()
    local script = { "set -e" }
    for _, b in ipairs(all) do
      local text = table.concat(b.lines, "\n")
      if not b.marker and b.lang == "sh" then
        script[#script + 1] = text
      elseif not b.marker and b.lang == "lua" then
        script[#script + 1] = "lua5.4 - <<'README_LUA_EOF'\n" .. text .. "\nREADME_LUA_EOF"
      end
    end
    local s = table.concat(script, "\n"):gsub("127%.0%.0%.1:8089", "127.0.0.1:" .. sb.port)
    if JIT then s = s:gsub("lua5%.4", "luajit"):gsub("build/5%.4", "build/5.1") end
    local file = tmp .. "/readme.sh"
    local f = assert(io.open(file, "w"))
    f:write(s, "\n")
    f:close()
    -- The README's sandbox is on 8089: its text is rewritten to this one's port above, and the
    -- example settings files' default (LOYALTY_BASE_URL, else 8089) is pointed at it here.
    local out, rc = capture("cd " .. runner.shell_quote(root) .. " && env TMPDIR=" .. runner.shell_quote(tmp)
                            .. " LOYALTY_BASE_URL=" .. sb.url .. " sh " .. runner.shell_quote(file))
    assert.equal(0, rc, out)
    assert.truthy(out:find("Tom\t2000\t%x+"), out)                        -- the quick start's Lua
    assert.truthy(out:find('"firstname":"Tom"', 1, true), out)           -- loyalty call
    assert.truthy(out:find("queued as outbox entry %d+"), out)             -- the outbox walk-through
    assert.truthy(out:find("outbox (sqlite): 1 pending, 0 delivered", 1, true), out)
    assert.truthy(out:find("1 entry: 1 delivered, 0 to retry, 0 dead", 1, true), out)
    assert.truthy(out:find("outbox (sqlite): 0 pending, 1 delivered (kept 3 days), 0 dead", 1, true), out)
    assert.truthy(out:find("6 passed, 0 failed", 1, true), out)          -- loyalty rules test
  end)

  it("quotes rule files as they are", function()
    local n = 0
    for _, b in ipairs(all) do
      local path = b.marker and b.marker:match("^file (%S+)$")
      if path then
        n = n + 1
        local text = table.concat(b.lines, "\n")
        subset(settings(text, "README"), settings(assert(runner.read_file(root .. "/" .. path)), path), path)
      end
    end
    assert.truthy(n >= 1)
  end)

  it("shows what `loyalty rules explain` prints", function()
    local out, rc = capture("cd " .. runner.shell_quote(root) .. " && " .. (JIT and "luajit" or "lua5.4")
                            .. " bin/loyalty rules explain examples/rules examples/rules/sample-cart.json")
    assert.equal(0, rc, out)
    local shown
    for i, b in ipairs(all) do
      if b.lang == "" and all[i - 1] and table.concat(all[i - 1].lines, "\n"):find("rules explain", 1, true) then
        shown = b
      end
    end
    assert.truthy(shown, "the explain example follows the rules commands")
    for _, line in ipairs(shown.lines) do
      assert.truthy(out:find(line, 1, true), "README line not in the output: " .. line .. "\n" .. out)
    end
  end)
end)

describe("every loyalty command in README.md and docs/", function()
  local PLACEHOLDER = { DIR = "examples/rules", ["CART.json"] = "c.json", ID = "1", FILE = "f", N = "1", MS = "1" }

  local function commands(path)
    local text = assert(runner.read_file(path))
    local found = {}
    local function take(cmd)
      cmd = cmd:gsub("%s+#.*$", ""):gsub("%s+$", "")
      cmd = cmd:gsub("^lua5%.4 ", ""):gsub("^luajit ", ""):gsub("^%./", ""):gsub("^bin/", "")
      local rest = cmd:match("^loyalty%s+(.*)$")
      local sandbox_rest = cmd:match("^loyalty%-sandbox%s+(.*)$")
      if sandbox_rest then rest = "sandbox " .. sandbox_rest end
      -- Synopses ([--opt], <arg>, a|b, ...) and shell substitutions are not commands.
      if rest and rest ~= "" and not rest:find("[%[<|]") and not rest:find("...", 1, true)
         and not rest:find("$(", 1, true) then
        found[#found + 1] = rest
      end
    end
    for code in text:gmatch("`([^`\n]+)`") do take(code) end
    for line in text:gmatch("[^\n]+") do take((line:gsub("^%s+", ""))) end
    return found
  end

  local files = { root .. "/README.md" }
  local p = io.popen("ls " .. runner.shell_quote(root .. "/docs") .. "/*.md")
  for f in p:lines() do files[#files + 1] = f end
  p:close()

  it("parses", function()
    local n = 0
    for _, path in ipairs(files) do
      for _, rest in ipairs(commands(path)) do
        local argv = {}
        for w in rest:gmatch("%S+") do
          w = w:gsub('^"(.*)"$', "%1")
          argv[#argv + 1] = PLACEHOLDER[w] or w
        end
        if argv[1] ~= "sandbox" or pcall(require, "loyalty.sandbox") then
          n = n + 1
          local ok, err = cli.parse(argv)
          assert(ok, path .. ": `loyalty " .. rest .. "`: " .. tostring(err))
        end
      end
    end
    assert.truthy(n >= 8, n)
  end)
end)

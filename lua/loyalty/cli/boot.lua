-- What bin/loyalty and bin/loyalty-sandbox do once their tree's paths are set: run under LuaJIT
-- when started by PUC Lua 5.1 (a LuaRocks 5.1 tree's wrapper runs lua5.1), give LuaJIT back its
-- own jit.* modules when LUA_PATH hides them, and never show a user a Lua traceback.
local _M = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- os.execute: a raw wait status on 5.1/LuaJIT (a signal in the low byte: the shell's 128 + N).
local function succeeded(a, how, code)
  if type(a) == "number" then
    if a % 256 ~= 0 then return false, 128 + a % 128 end
    return a == 0, math.floor(a / 256)
  end
  if how == "signal" then return false, 128 + code end
  return a == true, code
end

-- PUC Lua 5.1: the same script and arguments under luajit, its exit code ours.
local function reexec(script, argv)
  if not succeeded(os.execute("command -v luajit >/dev/null 2>&1")) then
    io.stderr:write("loyalty: this is PUC Lua 5.1, which lua-loyalty does not support, and luajit is not",
                    " installed: apt-get install luajit2 (or use the Lua 5.4 tree)\n")
    return 1
  end
  local parts = { "exec luajit", q(script) }
  for i = 1, #argv do parts[#parts + 1] = q(argv[i]) end
  local _, code = succeeded(os.execute(table.concat(parts, " ")))
  return code or 1
end

-- jit.vmdef and friends live on LuaJIT's default path (/usr/share/luajit-2.1.x/), which a LUA_PATH
-- without ";;" (say, from `luarocks path`) drops.
local function restore_jit_path()
  if pcall(require, "jit.vmdef") then return end
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  local interp = arg and arg[i] or "luajit"
  local p = io.popen("env -u LUA_PATH -u LUA_PATH_5_1 " .. q(interp) .. " -e 'io.write(package.path)' 2>/dev/null")
  local default = p and p:read("*a") or ""
  if p then p:close() end
  if default ~= "" then package.path = package.path .. ";" .. default end
end

--- run(script, argv, prefix) -> exit code. prefix: words put before argv ({"sandbox"} for loyalty-sandbox).
function _M.run(script, argv, prefix)
  if _VERSION == "Lua 5.1" and type(jit) ~= "table" then return reexec(script, argv) end
  if type(jit) == "table" then restore_jit_path() end
  local full = {}
  for _, w in ipairs(prefix or {}) do full[#full + 1] = w end
  for i = 1, #argv do full[#full + 1] = argv[i] end
  local ok, code = xpcall(function() return require("loyalty.cli").main(full) end, debug.traceback)
  if ok then return code end
  if os.getenv("LOYALTY_DEBUG") then
    io.stderr:write(tostring(code), "\n")
  else
    io.stderr:write("loyalty: internal error: ", (tostring(code):match("^[^\n]*")),
                    " (LOYALTY_DEBUG=1 shows where; please report it)\n")
  end
  return 1
end

return _M

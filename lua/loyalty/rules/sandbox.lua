-- Sandbox for analyst rule files: allow-listed environments, text-only compilation, and a guard that
-- bounds instructions, CPU time and memory growth of each evaluation on Lua 5.4 and LuaJIT alike.
local _M = {}

local debug_sethook, debug_gethook, debug_getinfo = debug.sethook, debug.gethook, debug.getinfo
local os_clock, collectgarbage, pcall, error, type, tostring = os.clock, collectgarbage, pcall, error, type, tostring
local setmetatable, getmetatable, rawget, next = setmetatable, getmetatable, rawget, next
local jit = rawget(_G, "jit")

_M.DEFAULTS = {
  instruction_limit = 1000000,
  time_limit_ms = 100,
  memory_limit_kb = 16384,
  hook_interval = 1000,     -- instructions between two checks: the granularity of every limit
}

-- Read-only view of a library: an empty proxy, so even existing keys cannot be overwritten.
local function read_only(name, fields)
  local copy = {}
  for k, v in next, fields do copy[k] = v end
  return setmetatable({}, {
    __index = copy,
    __newindex = function(_, key)
      error("the library table '" .. name .. "' cannot be changed (tried to set '" .. tostring(key) .. "')", 2)
    end,
    __metatable = false,
  })
end

local function pick(lib, names)
  local t = {}
  for _, n in ipairs(names) do t[n] = lib[n] end
  return t
end

-- string without rep (one call allocates gigabytes) and dump (bytecode); also swapped in as the string
-- metatable's __index while rules run, because ("x"):rep() reaches the real string table through it.
local safe_string_fields = pick(string, { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
  "match", "reverse", "sub", "upper" })
local SAFE_STRING_INDEX = {}
for k, v in next, safe_string_fields do SAFE_STRING_INDEX[k] = v end

local unpack = table.unpack or rawget(_G, "unpack")
local function pack(...) return { n = select("#", ...), ... } end

-- The real xpcall runs its message handler where the error was raised, with hooks disabled (a hook that
-- raised leaves them off until the stack unwinds), so a looping handler would escape every limit.
-- Here the handler runs after the unwinding, under the hook like any other rule code.
local function safe_xpcall(f, handler, ...)
  local results = pack(pcall(f, ...))
  if results[1] then return unpack(results, 1, results.n) end
  return false, handler(results[2])
end

local BASE = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, xpcall = safe_xpcall,
  unpack = unpack,
  string = read_only("string", safe_string_fields),
  -- random/randomseed left out: rules must give the same answer for the same cart.
  math = read_only("math", pick(math, { "abs", "ceil", "cos", "exp", "floor", "fmod", "huge", "log", "max",
    "min", "modf", "pi", "sin", "sqrt", "tan", "maxinteger", "mininteger", "tointeger", "type", "ult" })),
  table = read_only("table", pick(table, { "concat", "insert", "remove", "sort", "unpack" })),
  os = read_only("os", pick(os, { "time", "clock", "date" })),
}
_M.BASE_NAMES = {}
for k in next, BASE do _M.BASE_NAMES[#_M.BASE_NAMES + 1] = k end
_M.BASE_NAMES[#_M.BASE_NAMES + 1] = "print"
table.sort(_M.BASE_NAMES)

-- Names refused with a reason, so the analyst learns why rather than just "unknown name".
local FORBIDDEN = {
  io = "files cannot be read or written from rules", require = "rules cannot load modules",
  load = "rules cannot compile code", loadstring = "rules cannot compile code", loadfile = "rules cannot load files",
  dofile = "rules cannot load files", debug = "the debug library is not available to rules",
  getmetatable = "metatables are not available to rules", setmetatable = "metatables are not available to rules",
  rawget = "raw access is not available to rules", rawset = "raw access is not available to rules",
  rawequal = "raw access is not available to rules", rawlen = "raw access is not available to rules",
  collectgarbage = "rules cannot control the garbage collector", setfenv = "environments are not available to rules",
  getfenv = "environments are not available to rules", coroutine = "coroutines are not available to rules",
  module = "rules cannot define modules", package = "rules cannot load modules", jit = "rules cannot control the JIT",
  _G = "the global table is not available to rules", _ENV = "the global table is not available to rules",
  newproxy = "userdata are not available to rules", bit = "the bit library is not available to rules",
}
_M.FORBIDDEN = FORBIDDEN

-- Error values that carry a position; `level` follows error()'s convention.
local function fail(message, level)
  error(message, (level or 1) + 1)
end

-- Builds the environment of one rule file.
-- hooks.on_set(name, value, line) is called for top-level assignments while the file loads and returns
-- nothing or an error message; hooks.suggest(name) may return a close known name.
-- After env_control.freeze(), any assignment is an error (rules must not keep state between evaluations).
function _M.new_env(hooks)
  local values, frozen = {}, false
  local env = {}
  setmetatable(env, {
    __index = function(_, name)
      local v = values[name]
      if v ~= nil then return v end
      v = BASE[name]
      if v ~= nil then return v end
      if name == "print" then return hooks.print end
      if FORBIDDEN[name] then fail("'" .. tostring(name) .. "' is not allowed: " .. FORBIDDEN[name], 2) end
      local hint = hooks.suggest and hooks.suggest(name)
      fail("unknown name '" .. tostring(name) .. "'" .. (hint and (" (did you mean '" .. hint .. "'?)") or ""), 2)
    end,
    __newindex = function(_, name, value)
      if frozen then
        fail("rules cannot change '" .. tostring(name) .. "' while they run; use a local variable", 2)
      end
      local info = debug_getinfo(2, "l")
      local problem = hooks.on_set(name, value, info and info.currentline or 0)
      if problem then return end  -- recorded by on_set; keep reading the file to report every problem
      values[name] = value
    end,
    __metatable = false,
  })
  local control = {}
  function control.freeze() frozen = true end
  function control.values() return values end
  return env, control
end

-- Compiles text only: bytecode is refused before load sees it, and mode "t" refuses it again.
function _M.compile(source, chunkname, env)
  if type(source) ~= "string" then return nil, "the file could not be read as text" end
  if source:byte(1) == 27 then return nil, "precompiled (binary) chunks are not accepted; rules must be text" end
  local fn, err = load(source, "=" .. chunkname, "t", env)
  if not fn then return nil, err end
  if jit then jit.off(fn, true) end  -- compiled loops skip count hooks; keep every rule function interpreted
  return fn
end

-- Makes a function created outside compile() (none today) safe to call under the guard.
function _M.jit_off(fn)
  if jit and type(fn) == "function" then jit.off(fn, true) end
end

-- The guard. Hooks are global per VM under LuaJIT, so state lives here and the hook is removed on every path.
local state = {
  active = false, steps = 0, step_limit = 0, deadline = 0, mem_base = 0, mem_limit = 0,
  tripped = nil, where_file = nil, where_line = nil, is_rule_source = nil,
  armed = false, old_hook = nil, old_mask = nil, old_count = nil, old_string_index = nil,
}
local run_frame -- the function that owns the pcall; never raise inside it

local function locate()
  -- the innermost rule-file frame names the place analysts need to look at
  for level = 3, 60 do
    local info = debug_getinfo(level, "Sl")
    if not info then break end
    local src = info.source
    if src and state.is_rule_source and state.is_rule_source(src) then
      return src:sub(2), info.currentline
    end
  end
end

local hook
hook = function()
  -- the frame that owns the pcall must be able to remove the hook; never raise there
  local info = debug_getinfo(2, "f")
  if info and info.func == run_frame then return end
  if state.tripped then
    debug_sethook(hook, "", 1)  -- re-arm on every instruction: a pcall inside the rule cannot swallow this
    error(state.tripped, 0)
  end
  local s = state
  s.steps = s.steps + s.interval
  local why
  if s.steps > s.step_limit then
    why = "the rules took more than " .. s.step_limit .. " steps (is there a loop that never ends?)"
  elseif os_clock() > s.deadline then
    why = "the rules ran longer than " .. s.time_limit_ms .. " ms (is there a loop that never ends?)"
  elseif collectgarbage("count") - s.mem_base > s.mem_limit then
    why = "the rules used more than " .. s.mem_limit .. " KB of memory"
  end
  if why then
    s.where_file, s.where_line = locate()
    s.tripped = { limit = true, message = why }
    debug_sethook(hook, "", 1)
    error(s.tripped, 0)
  end
end

local string_mt = getmetatable("")

-- Starts the limits: called when the first rule code of an evaluation is about to run, so evaluations
-- that run no rule code (data-only settings) pay nothing for clocks, memory counts or hooks.
local function arm(s)
  s.armed = true
  s.old_hook, s.old_mask, s.old_count = debug_gethook()
  if s.old_hook then debug_sethook() end
  s.old_string_index = string_mt.__index
  s.mem_base = collectgarbage("count")
  s.deadline = os_clock() + s.time_limit_ms / 1000
  string_mt.__index = SAFE_STRING_INDEX
end

-- Runs fn(...) under the limits. Returns true, results... or false, err where err is
-- {limit = true, message, file, line} for a tripped limit or the raw error value otherwise.
-- limits: {instruction_limit, time_limit_ms, memory_limit_kb, hook_interval, is_rule_source = function(source)}
-- hook_all: count every instruction of fn (a rule file's main chunk). Otherwise fn is trusted engine code that
-- brackets its calls into rule functions with enter()/leave(): under Lua 5.4 an installed count hook makes
-- every instruction go through the hook dispatcher, so trusted code runs faster without it.
local function run(limits, hook_all, fn, a, b, c, d)
  if state.active then
    -- nested use would share the global hook; evaluations never nest, so this is a programmer error
    error("loyalty.rules: evaluations cannot be nested")
  end
  local s = state
  s.active = true
  s.tripped, s.where_file, s.where_line = nil, nil, nil
  s.steps = 0
  s.step_limit = limits.instruction_limit
  s.time_limit_ms = limits.time_limit_ms
  s.mem_limit = limits.memory_limit_kb
  s.is_rule_source = limits.is_rule_source
  local interval = limits.hook_interval
  if interval > s.step_limit then interval = s.step_limit end
  s.interval = interval
  if hook_all then
    arm(s)
    debug_sethook(hook, "", interval)
  end
  local ok, r1, r2, r3 = pcall(fn, a, b, c, d)
  if s.armed then
    debug_sethook()
    s.armed = false
    string_mt.__index = s.old_string_index
    if s.old_hook then debug_sethook(s.old_hook, s.old_mask, s.old_count) end
    s.old_hook, s.old_string_index = nil, nil
  end
  s.active = false
  if s.tripped then
    local t = s.tripped
    s.tripped = nil
    return false, { limit = true, message = t.message, file = s.where_file, line = s.where_line }
  end
  return ok, r1, r2, r3
end

-- Brackets calls into rule functions made by trusted code running under run(limits, false, ...).
-- Steps are counted in whole hook intervals: a call shorter than one interval is bounded by the caller's loop.
function _M.enter()
  local s = state
  if not s.armed then arm(s) end
  debug_sethook(hook, "", s.interval)
end
function _M.leave() debug_sethook() end

run_frame = run
_M.run = run

-- Turns a Lua error into plain words with file and line: {message, file, line}.
function _M.describe_error(e, fallback_file)
  if type(e) == "table" then
    if e.limit then return { message = e.message, file = e.file, line = e.line } end
    if e.message then return { message = tostring(e.message), file = e.file or fallback_file, line = e.line } end
    return { message = "the rules raised an error that is not text", file = fallback_file }
  end
  local text = tostring(e)
  local file, line, rest = text:match("^([^:\n]+%.lua):(%d+): (.*)$")
  if file then return { message = rest, file = file, line = tonumber(line) } end
  file, line, rest = text:match('^%[string "([^"]+)"%]:(%d+): (.*)$')
  if file then return { message = rest, file = file, line = tonumber(line) } end
  return { message = text, file = fallback_file }
end

return _M

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

-- gsub with a function calls back into Lua from C: a rule function that calls gsub on itself nests C frames
-- (LuaJIT 2.1 crashes the process after about 900 of them instead of raising). Nesting is capped; the
-- depth is reset when an evaluation starts, since a tripped limit may unwind past the decrement.
local string_gsub = string.gsub
local GSUB_MAX_DEPTH = 20
local gsub_depth = 0
local function safe_gsub(s, pattern, repl, n)
  if type(repl) ~= "function" then return string_gsub(s, pattern, repl, n) end
  if gsub_depth >= GSUB_MAX_DEPTH then
    error("string.gsub with a function nests more than " .. GSUB_MAX_DEPTH .. " deep", 2)
  end
  gsub_depth = gsub_depth + 1
  local ok, text, count = pcall(string_gsub, s, pattern, repl, n)
  gsub_depth = gsub_depth - 1
  if not ok then error(text, 0) end
  return text, count
end
safe_string_fields.gsub = safe_gsub
local SAFE_STRING_INDEX = {}
for k, v in next, safe_string_fields do SAFE_STRING_INDEX[k] = v end

local unpack = table.unpack or rawget(_G, "unpack")
local function pack(...) return { n = select("#", ...), ... } end

-- Counts a call of a trusted Lua function that rule code can call (xpcall, print) like a call of a rule
-- function: under call guards nothing else would see a C function such as gsub calling one a million times.
local charge

-- The real xpcall runs its message handler where the error was raised, with hooks disabled (a hook that
-- raised leaves them off until the stack unwinds), so a looping handler would escape every limit.
-- Here the handler runs after the unwinding, under the hook like any other rule code.
local function safe_xpcall(f, handler, ...)
  charge(8)
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
  local printer = hooks.print
  local function guarded_print(...)
    charge(select("#", ...) + 8)
    return printer(...)
  end
  setmetatable(env, {
    __index = function(_, name)
      local v = values[name]
      if v ~= nil then return v end
      v = BASE[name]
      if v ~= nil then return v end
      if name == "print" then
        if printer then return guarded_print end
        return nil
      end
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

-- LuaJIT call guards. A rule file whose functions contain no loop (no loop instruction, no backward jump,
-- so goto loops count too) can only run long by calling functions. Such a file is compiled with a call to
-- a guard at the top of every function; the guard adds the file's longest function (in bytecodes) to the
-- step count, a sound upper bound on the instructions the call runs before its next call. Being ordinary
-- code, the guard also runs inside compiled traces, so these files keep the JIT and need no count hook.
-- The text rewriting only has to be right for speed: the result is checked on the bytecode, and any file it
-- does not understand runs under the count hook with the JIT off, as before.
local GUARD_NAME = "__loyalty_guard"
local GUARD_PREFIX = "local " .. GUARD_NAME .. " = ...; "   -- same line: line numbers stay the file's
local GUARD_CALL = " do " .. GUARD_NAME .. "() end "           -- `do ... end`: no ambiguity with a `(` after it

-- Offsets just after the parameter list of every `function` in src; nil for text it does not follow.
local function function_bodies(src)
  local find, match, sub = string.find, string.match, string.sub
  local out, pos, n, pending = {}, 1, #src, false
  while true do
    pos = select(2, find(src, "^%s*", pos)) + 1
    if pos > n then break end
    local c = sub(src, pos, pos)
    if c == "-" and sub(src, pos + 1, pos + 1) == "-" then
      local eq = match(src, "^%[(=*)%[", pos + 2)
      if eq then
        local _, close = find(src, "]" .. eq .. "]", pos + 2, true)
        if not close then return nil end
        pos = close + 1
      else
        local nl = find(src, "\n", pos, true)
        pos = nl and nl + 1 or n + 1
      end
    elseif c == "[" and match(src, "^%[=*%[", pos) then
      local eq = match(src, "^%[(=*)%[", pos)
      local _, close = find(src, "]" .. eq .. "]", pos, true)
      if not close then return nil end
      pos = close + 1
    elseif c == '"' or c == "'" then
      local i = pos + 1
      while true do
        local ch = sub(src, i, i)
        if ch == "" or ch == "\n" or ch == "\r" then return nil end
        if ch == "\\" then i = i + 2 elseif ch == c then break else i = i + 1 end
      end
      pos = i + 1
    elseif match(src, "^[%a_\128-\255]", pos) then
      local word = match(src, "^[%w_\128-\255]+", pos)
      if word == "function" then pending = true end
      pos = pos + #word
    elseif match(src, "^%.?%d", pos) then
      pos = pos + #match(src, "^%.?[%w_%.\128-\255]+", pos)
    elseif c == ")" and pending then
      out[#out + 1] = pos
      pending = false
      pos = pos + 1
    else
      pos = pos + 1
    end
  end
  if pending then return nil end
  return out
end

local LOOP_OPS = {}
for _, name in ipairs({ "FORI", "JFORI", "FORL", "IFORL", "JFORL", "ITERL", "IITERL", "JITERL", "LOOP", "ILOOP",
  "JLOOP", "ITERC", "ITERN", "ISNEXT" }) do LOOP_OPS[name] = true end

-- Checks every prototype of a guarded chunk: no loop instruction, every jump goes forward, every function
-- (not the main chunk, which runs once) starts with `UGET r, <guard>; CALL r, 0 results, 0 args`, and no
-- text constant contains the guard's name.
-- Returns the longest function's bytecode count, or nil.
local function check_guarded(main)
  local util, bnames = require("jit.util"), require("jit.vmdef").bcnames
  local bit = require("bit")
  local band, rshift = bit.band, bit.rshift
  local longest = 0
  local function walk(proto, is_main)
    local count = 0
    for pc = 0, 1e9 do
      local ins, mode = util.funcbc(proto, pc)
      if not ins then break end
      count = count + 1
      local op = band(ins, 255)
      local name = bnames:sub(op * 6 + 1, op * 6 + 6):match("^%S+")
      if LOOP_OPS[name] then return false end
      if band(mode, 15 * 128) == 13 * 128 and rshift(ins, 16) - 0x8000 < 0 then return false end
    end
    if not is_main then
      local uget, call = util.funcbc(proto, 1), util.funcbc(proto, 2)
      if not (uget and call) then return false end
      local a = band(rshift(uget, 8), 255)
      if bnames:sub(band(uget, 255) * 6 + 1, band(uget, 255) * 6 + 6) ~= "UGET  "
        or util.funcuvname(proto, rshift(uget, 16)) ~= GUARD_NAME
        or bnames:sub(band(call, 255) * 6 + 1, band(call, 255) * 6 + 6) ~= "CALL  "
        or band(rshift(call, 8), 255) ~= a or rshift(call, 16) ~= 0x0101 then
        return false
      end
      if count > longest then longest = count end
    end
    for i = -1, -1e9, -1 do
      local k = util.funck(proto, i)
      if k == nil then break end
      if type(k) == "proto" and not walk(k, false) then return false end
      -- the source never names the guard, so a constant that does means a call was written into a string
      if type(k) == "string" and k:find(GUARD_NAME, 1, true) then return false end
    end
    return true
  end
  if not walk(main, true) then return nil end
  return longest
end

local new_guard  -- defined with the guard's state below

-- Compiles text only: bytecode is refused before load sees it, and mode "t" refuses it again.
-- Returns fn, nil, guarded: guarded is true when the file runs under call guards (LuaJIT, loop-free files,
-- and only if `guards` is asked for); fn then takes no arguments like any chunk.
function _M.compile(source, chunkname, env, guards)
  if type(source) ~= "string" then return nil, "the file could not be read as text" end
  if source:byte(1) == 27 then return nil, "precompiled (binary) chunks are not accepted; rules must be text" end
  if guards and jit and not source:find(GUARD_NAME, 1, true) then
    local bodies = function_bodies(source)
    if bodies then
      local parts, last = { GUARD_PREFIX }, 0
      for _, at in ipairs(bodies) do
        parts[#parts + 1] = source:sub(last + 1, at)
        parts[#parts + 1] = GUARD_CALL
        last = at
      end
      parts[#parts + 1] = source:sub(last + 1)
      local fn = load(table.concat(parts), "=" .. chunkname, "t", env)
      local longest = fn and check_guarded(fn)
      if longest then
        local guard = new_guard(longest)
        return function() return fn(guard) end, nil, true
      end
    end
  end
  local fn, err = load(source, "=" .. chunkname, "t", env)
  if not fn then return nil, err end
  if jit then jit.off(fn, true) end  -- compiled loops skip count hooks; keep every rule function interpreted
  return fn, nil, false
end

-- The guard. Hooks are global per VM under LuaJIT, so state lives here and the hook is removed on every path.
local state = {
  active = false, steps = 0, step_limit = 0, next_check = 0, deadline = 0, mem_base = 0, mem_limit = 0,
  tripped = nil, where_file = nil, where_line = nil, is_rule_source = nil, hooked = false,
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

-- Once a limit trips, the count hook fires on every instruction and every call guard raises again, so a
-- pcall inside the rule cannot swallow the limit.
local function raise_tripped(s)
  if s.next_check ~= -1 then
    s.next_check = -1
    s.hooked = true
    debug_sethook(hook, "", 1)
  end
  error(s.tripped, 0)
end

-- Checks every limit; called by the count hook and by call guards every hook_interval steps.
local function check_limits(s)
  if s.tripped then raise_tripped(s) end
  local why
  if s.steps > s.step_limit then
    why = "the rules took more than " .. s.step_limit .. " steps (is there a loop or a function calling itself" ..
      " that never ends?)"
  elseif os_clock() > s.deadline then
    why = "the rules ran longer than " .. s.time_limit_ms .. " ms (is there a loop that never ends?)"
  elseif collectgarbage("count") - s.mem_base > s.mem_limit then
    why = "the rules used more than " .. s.mem_limit .. " KB of memory"
  end
  if why then
    s.where_file, s.where_line = locate()
    s.tripped = { limit = true, message = why }
    raise_tripped(s)
  end
  s.next_check = s.steps + s.interval
end

hook = function()
  -- the frame that owns the pcall must be able to remove the hook; never raise there
  local info = debug_getinfo(2, "f")
  if info and info.func == run_frame then return end
  local s = state
  s.steps = s.steps + s.interval
  check_limits(s)
end

-- The guard a guarded file calls at the top of every function (see compile).
new_guard = function(cost)
  return function()
    local s = state
    local steps = s.steps + cost
    s.steps = steps
    if steps > s.next_check then check_limits(s) end
  end
end

charge = function(cost)
  local s = state
  if not s.active then return end
  local steps = s.steps + cost
  s.steps = steps
  if steps > s.next_check then check_limits(s) end
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
  gsub_depth = 0
  s.steps = 0
  s.step_limit = limits.instruction_limit
  s.time_limit_ms = limits.time_limit_ms
  s.mem_limit = limits.memory_limit_kb
  s.is_rule_source = limits.is_rule_source
  local interval = limits.hook_interval
  if interval > s.step_limit then interval = s.step_limit end
  s.interval = interval
  s.next_check = interval
  if hook_all then
    arm(s)
    s.hooked = true
    debug_sethook(hook, "", interval)
  end
  local ok, r1, r2, r3 = pcall(fn, a, b, c, d)
  if s.hooked then
    debug_sethook()
    s.hooked = false
  end
  if s.armed then
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
-- guarded: the functions come from a file compiled with call guards, which need no hook.
-- Otherwise steps are counted in whole hook intervals: a call shorter than one interval is bounded by the
-- caller's loop.
function _M.enter(guarded)
  local s = state
  if not s.armed then arm(s) end
  if not guarded then
    s.hooked = true
    debug_sethook(hook, "", s.interval)
  end
end
function _M.leave()
  local s = state
  if s.hooked then
    debug_sethook()
    s.hooked = false
  end
end

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

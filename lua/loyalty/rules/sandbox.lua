-- Sandbox for analyst rule files: allow-listed environments, text-only compilation, and a guard that
-- bounds instructions, CPU time and memory of each evaluation on Lua 5.4 and LuaJIT alike, including the
-- work done inside library functions (see "Safety model" in docs/rules.md).
local _M = {}

local debug_sethook, debug_gethook, debug_getinfo = debug.sethook, debug.gethook, debug.getinfo
local debug_getupvalue = debug.getupvalue
local os_clock, collectgarbage, pcall, error, type, tostring = os.clock, collectgarbage, pcall, error, type, tostring
local setmetatable, getmetatable, rawget, next, select = setmetatable, getmetatable, rawget, next, select
local string_byte, string_sub, floor = string.byte, string.sub, math.floor
local jit = rawget(_G, "jit")
local newproxy = rawget(_G, "newproxy")

_M.DEFAULTS = {
  instruction_limit = 1000000,
  time_limit_ms = 100,
  memory_limit_kb = 16384,
  hook_interval = 1000,     -- instructions between two checks: the granularity of every limit
}

-- The allocation cap of loyalty.core (csrc/memcap.c): while rule code runs, every allocation counts
-- against the memory limit and one that would pass it is refused before it happens. Without the C core
-- (plain Lua installs) the limit is checked from the hook and at the end of each evaluation instead.
-- Time is the C core's monotonic clock (wall time: what a shopper waits; in nginx, threads of the worker
-- do not eat the rule's limit), else os.clock (CPU time of the process).
local memcap_start, memcap_stop, memcap_refused

do
  local ok, core = pcall(require, "loyalty.core")
  if ok and type(core) == "table" and type(core.memcap_start) == "function" then
    memcap_start, memcap_stop, memcap_refused = core.memcap_start, core.memcap_stop, core.memcap_refused
    os_clock = core.now
  end
end
_M.HARD_MEMORY_CAP = memcap_start ~= nil

-- Sizes: one block (a string, a table's array or hash part) and one library result at most MAX_BLOCK
-- bytes, so no single instruction or library call of a rule touches more than that much memory.
local MAX_BLOCK = 1024 * 1024
local PRINT_LIMIT = 4096          -- bytes of print output kept per evaluation (or per rule set load)
_M.PRINT_LIMIT = PRINT_LIMIT
-- Pattern matching is bounded by a worst-case estimate of the matcher's steps (see match_cost); one
-- step cost at most about 2 ns in the worst cases measured here, so one call stays within ~10 ms.
local PATTERN_BUDGET = 5000000
local CLOCK_AFTER = 20000         -- calls estimated above this many steps check the clock when they return

-- The guard's state. Hooks are global per VM under LuaJIT, so state lives here and the hook is removed on
-- every path. Evaluations never nest.
local state = {
  active = false, steps = 0, step_limit = 0, next_check = 0, deadline = 0, mem_base = 0, mem_limit = 0,
  tripped = nil, where_file = nil, where_line = nil, is_rule_source = nil, hooked = false,
  armed = false, old_hook = nil, old_mask = nil, old_count = nil, old_string_index = nil,
  capped = false, max_bytes = MAX_BLOCK, generation = 0, file = nil,
  output = nil, output_left = 0,
}
local run_frame -- the function that owns the pcall; never raise inside it
local at_rule_line -- its message handler; never raise inside it either (it would be called again)
local hook

local function locate(from)
  -- the innermost rule-file frame names the place analysts need to look at
  for level = from or 3, 60 do
    local info = debug_getinfo(level, "Sl")
    if not info then break end
    local src = info.source
    if src and state.is_rule_source and state.is_rule_source(src) then
      return src:sub(2), info.currentline
    end
  end
end

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

-- Messages are made when an evaluation starts: a count hook must not allocate before the cap is lifted
-- (LuaJIT crashes on a memory error raised inside a hook).
local BLOCK_MESSAGE = "the rules used more than " .. floor(MAX_BLOCK / 1024) .. " KB of memory for one text or table"
local function memory_message(s, refusal)
  if refusal == 2 then return BLOCK_MESSAGE end
  return s.memory_text
end
local function time_message(s) return s.time_text end

-- Records a tripped limit. From then on every rule instruction raises, so rule code can do no more work;
-- the allocation cap is lifted so that unwinding (and the hook, which allocates once tripped) never meets it.
local function set_tripped(s, why)
  if s.capped then
    s.capped = false
    memcap_stop()
  end
  s.where_file, s.where_line = locate()
  s.tripped = { limit = true, message = why }
end

local function trip(s, why)
  if not s.tripped then set_tripped(s, why) end
  raise_tripped(s)
end

-- Checks every limit; called by the count hook, by call guards and by library wrappers. Allocates
-- nothing unless a limit trips (what the hook allocates would count against the rule's memory).
local function over_limit(s)
  local refusal = s.capped and memcap_refused()
  if refusal and refusal ~= 0 then return memory_message(s, refusal) end
  if s.steps > s.step_limit then return s.steps_text end
  if os_clock() > s.deadline then return time_message(s) end
  if s.soft_memory and collectgarbage("count") - s.mem_base > s.mem_limit then return memory_message(s) end
end

local function check_limits(s)
  if s.tripped then raise_tripped(s) end
  local why = over_limit(s)
  if why then trip(s, why) end
  s.next_check = s.steps + s.interval
end

-- Counts work done for rule code outside rule instructions (library calls, print, xpcall) as steps.
local function charge(cost)
  local s = state
  if not s.active then return end
  local steps = s.steps + cost
  s.steps = steps
  if steps > s.next_check then check_limits(s) end
end

-- Passes a library call's results through after checking the clock: for calls that may take a while.
local function clocked(...)
  local s = state
  if s.active and os_clock() > s.deadline then trip(s, time_message(s)) end
  return ...
end

-- A library call refused because of its size: an ordinary error at the rule's line.
local function too_big(what, bytes)
  error(what .. " would build a text of up to " .. floor(bytes) .. " bytes; rules may build at most " ..
    state.max_bytes .. " bytes at once", 3)
end

-- Read-only view of a library. LuaJIT's table functions write raw (table.insert(string, f) would change
-- a shared table), so there the view is a userdata, which they refuse; Lua 5.4's honour __newindex.
local function read_only(name, fields)
  local copy = {}
  for k, v in next, fields do copy[k] = v end
  local mt = {
    __index = copy,
    __newindex = function(_, key)
      error("the library table '" .. name .. "' cannot be changed (tried to set '" .. tostring(key) .. "')", 2)
    end,
  }
  if newproxy then
    local u = newproxy(true)
    local umt = getmetatable(u)
    for k, v in next, mt do umt[k] = v end
    umt.__metatable = false
    return u
  end
  mt.__metatable = false
  return setmetatable({}, mt)
end

local function pick(lib, names)
  local t = {}
  for _, n in ipairs(names) do t[n] = lib[n] end
  return t
end

---------------------------------------------------------------------------------------------------------
-- The string library for rules. Functions whose work is bounded by what they allocate (sub, upper, ...)
-- are held by the allocation cap; pattern matching, whose work can grow far beyond its input, is
-- estimated before it runs and refused above PATTERN_BUDGET.

local str_find, str_match, str_gmatch, str_gsub = string.find, string.match, string.gmatch, string.gsub
local str_upper, str_lower, str_reverse, str_format = string.upper, string.lower, string.reverse, string.format

-- End (exclusive) of the set starting at p[i] == "[", as Lua's matcher reads it.
local function class_end(p, i, len)
  local j = i + 1
  if string_byte(p, j) == 94 then j = j + 1 end  -- ^
  repeat
    if j > len then return len + 1 end
    local c = string_byte(p, j)
    j = j + 1
    if c == 37 and j <= len then j = j + 1 end   -- %x inside a set
  until string_byte(p, j) == 93                   -- ]
  return j + 1
end

-- Worst-case matcher steps for pattern p over a subject of n bytes, folded from the pattern's end: a
-- greedy repetition (* +) counts up to n bytes and may retry the rest at each of n + 1 positions, a lazy
-- one (-) tries the rest up to n + 1 times, `?` tries it twice, %b and back references scan up to n bytes;
-- an unanchored search (and gmatch, gsub) starts at each of n + 1 positions. A sound upper bound.
local kinds = {}   -- scratch: 0 one step, 1 greedy, 2 lazy, 3 optional, 4 a scan of up to n bytes
local function match_cost(p, n, anchor_allowed)
  local len, i, k = #p, 1, 0
  local anchored = false
  if anchor_allowed and string_byte(p, 1) == 94 then anchored, i = true, 2 end
  while i <= len do
    local c = string_byte(p, i)
    local j, kind, quantifiable = i + 1, 0, true
    if c == 40 or c == 41 or (c == 36 and i == len) then   -- ( ) captures, $ at the end
      quantifiable = false
    elseif c == 37 then                                   -- %
      local d = string_byte(p, i + 1)
      if d == 98 then j, quantifiable, kind = i + 4, false, 4                          -- %bxy
      elseif d == 102 then j, quantifiable = class_end(p, i + 2, len), false           -- %f[set]
      elseif d and d >= 48 and d <= 57 then j, quantifiable, kind = i + 2, false, 4    -- back reference
      else j = i + 2 end
    elseif c == 91 then j = class_end(p, i, len) end
    if quantifiable then
      local q = string_byte(p, j)
      if q == 42 or q == 43 then kind, j = 1, j + 1
      elseif q == 45 then kind, j = 2, j + 1
      elseif q == 63 then kind, j = 3, j + 1 end
    end
    k = k + 1
    kinds[k] = kind
    i = j
  end
  local t = 1
  for idx = k, 1, -1 do
    local kind = kinds[idx]
    if kind == 0 then t = t + 1
    elseif kind == 1 then t = n + (n + 1) * t
    elseif kind == 2 then t = (n + 1) * (t + 1)
    elseif kind == 3 then t = 1 + 2 * t
    else t = n + t end
  end
  if not anchored then t = t * (n + 1) end
  return t
end

local function pattern_refused(fname, p, n, cost)
  error("string." .. fname .. ": the pattern " .. str_format("%q", string_sub(p, 1, 40)) ..
    (#p > 40 and "..." or "") .. " over a text of " .. n .. " bytes could take up to " ..
    str_format("%.3g", cost) .. " matching steps (at most " .. PATTERN_BUDGET .. "); match shorter texts, " ..
    "anchor the pattern with ^, or use fewer repetitions (* + - ?)", 4)
end

-- Cost of one search; raises when over budget. Charges the estimate's linear share as steps.
local function search_cost(fname, s, p, plain, whole)
  local n = #s
  local cost
  if plain then
    local m = #p
    cost = n / 16 + (m <= n and (n - m + 1) * m / 64 or 0)
  else
    cost = match_cost(p, n, not whole)
  end
  if cost > PATTERN_BUDGET then pattern_refused(fname, p, n, cost) end
  charge(1 + n / 16)
  return cost
end

local function safe_find(s, p, init, plain)
  if type(s) ~= "string" or type(p) ~= "string" then return str_find(s, p, init, plain) end
  if search_cost("find", s, p, plain, false) > CLOCK_AFTER then return clocked(str_find(s, p, init, plain)) end
  return str_find(s, p, init, plain)
end

local function safe_match(s, p, init)
  if type(s) ~= "string" or type(p) ~= "string" then return str_match(s, p, init) end
  if search_cost("match", s, p, false, false) > CLOCK_AFTER then return clocked(str_match(s, p, init)) end
  return str_match(s, p, init)
end

-- gmatch: the estimate covers the whole iteration (each position is tried at most once).
local function safe_gmatch(s, p, ...)
  if type(s) == "string" and type(p) == "string" then search_cost("gmatch", s, p, false, true) end
  return str_gmatch(s, p, ...)
end

-- gsub with a function calls back into Lua from C: a rule function that calls gsub on itself nests C frames
-- (LuaJIT 2.1 crashes the process after about 900 of them instead of raising). Nesting is capped; the
-- depth is reset when an evaluation starts, since a tripped limit may unwind past the decrement.
local GSUB_MAX_DEPTH = 20
local gsub_depth = 0
local function safe_gsub(s, pattern, repl, n)
  local tr = type(repl)
  if type(s) == "string" and type(pattern) == "string" then
    local len = #s
    local cost = search_cost("gsub", s, pattern, false, false)
    -- the result's size, before it is built: every match (at most len + 1) adds the replacement, and each
    -- %0-%9 in it copies at most the whole subject once over all matches
    local matches = len + 1
    if type(n) == "number" and n >= 0 and n < matches then matches = floor(n) end
    local size
    if tr == "string" or tr == "number" then
      repl = tostring(repl)
      local refs = select(2, str_gsub(repl, "%%%d", ""))
      size = len + matches * #repl + refs * len
    elseif tr == "table" then
      local longest, count = 0, 0
      for _, v in next, repl do
        count = count + 1
        if type(v) == "string" and #v > longest then longest = #v end
      end
      charge(count)
      size = len + matches * (longest > 32 and longest or 32)
    end
    if size and size > state.max_bytes then too_big("string.gsub", size) end
    if tr ~= "function" and cost > CLOCK_AFTER then return clocked(str_gsub(s, pattern, repl, n)) end
  end
  if tr ~= "function" then return str_gsub(s, pattern, repl, n) end
  if gsub_depth >= GSUB_MAX_DEPTH then
    error("string.gsub with a function nests more than " .. GSUB_MAX_DEPTH .. " deep", 2)
  end
  gsub_depth = gsub_depth + 1
  local ok, text, count = pcall(str_gsub, s, pattern, repl, n)
  gsub_depth = gsub_depth - 1
  if not ok then error(text, 0) end
  return text, count
end

-- format: each directive writes at most its argument (strings up to 4x with %q) plus 512 bytes.
local function safe_format(fmt, ...)
  if type(fmt) == "string" then
    local size, count = #fmt, select("#", ...)
    for i = 1, count do
      local v = select(i, ...)
      size = size + 512 + (type(v) == "string" and 4 * #v or 0)
    end
    if size > state.max_bytes then too_big("string.format", size) end
    charge(1 + count + size / 64)
  end
  return str_format(fmt, ...)
end

local function linear(f, per_byte)
  return function(s, ...)
    if type(s) == "string" then charge(1 + #s * per_byte) end
    return f(s, ...)
  end
end

-- string without rep (one call allocates gigabytes) and dump (bytecode); also swapped in as the string
-- metatable's __index while rules run, because ("x"):rep() reaches the real string table through it.
local safe_string_fields = pick(string, { "byte", "char", "len", "sub" })
safe_string_fields.find, safe_string_fields.match, safe_string_fields.gmatch = safe_find, safe_match, safe_gmatch
safe_string_fields.gsub, safe_string_fields.format = safe_gsub, safe_format
safe_string_fields.upper = linear(str_upper, 0.25)
safe_string_fields.lower = linear(str_lower, 0.25)
safe_string_fields.reverse = linear(str_reverse, 0.25)
local SAFE_STRING_INDEX = {}
for k, v in next, safe_string_fields do SAFE_STRING_INDEX[k] = v end

---------------------------------------------------------------------------------------------------------
-- table, unpack, tonumber, os.date: bounded by size, charged by the elements they touch.

local unpack = table.unpack or rawget(_G, "unpack")
local tbl_concat, tbl_insert, tbl_remove, tbl_sort = table.concat, table.insert, table.remove, table.sort
local function pack(...) return { n = select("#", ...), ... } end

-- concat: the result's size is added up first (stopping at the first element concat would refuse).
local function safe_concat(t, sep, i, j)
  if type(t) == "table" then
    local seplen = (type(sep) == "string" or type(sep) == "number") and #tostring(sep) or 0
    local first, last = i or 1, j or #t
    if type(first) == "number" and type(last) == "number" then
      local size, limit = 0, state.max_bytes
      local k = first
      while k <= last do
        local v = t[k]
        local tv = type(v)
        if tv == "string" then size = size + #v + seplen
        elseif tv == "number" then size = size + 24 + seplen
        else break end
        if size > limit then too_big("table.concat", size) end
        k = k + 1
      end
      charge(1 + (k - first) + size / 64)
    end
  end
  return tbl_concat(t, sep, i, j)
end

-- insert and remove at a position shift every element after it
local function safe_insert(t, ...)
  if select("#", ...) > 1 and type(t) == "table" then charge(1 + #t) end
  return tbl_insert(t, ...)
end
local function safe_remove(t, ...)
  if type(t) == "table" then charge(1 + (select("#", ...) > 0 and #t or 0)) end
  return tbl_remove(t, ...)
end
local function safe_sort(t, less)
  if type(t) == "table" then
    local n = #t
    charge(1 + n * (n > 1 and math.log(n) / math.log(2) or 1))
  end
  return tbl_sort(t, less)
end

local MAX_UNPACK = 10000
local function safe_unpack(t, i, j)
  if type(t) == "table" then
    local first, last = i or 1, j or #t
    if type(first) == "number" and type(last) == "number" then
      if last - first >= MAX_UNPACK then
        error("unpack of more than " .. MAX_UNPACK .. " values", 2)
      end
      charge(1 + (last - first))
    end
  end
  return unpack(t, i, j)
end

local raw_tonumber = tonumber
local function safe_tonumber(v, base)
  if type(v) == "string" and #v > 64 then charge(#v / 8) end
  if base == nil then return raw_tonumber(v) end
  return raw_tonumber(v, base)
end

local os_date = os.date
local function safe_date(fmt, t)
  if type(fmt) == "string" and #fmt > 256 then error("os.date: the format is longer than 256 bytes", 2) end
  return os_date(fmt, t)
end

-- pcall may nest at most PCALL_MAX_DEPTH deep: once a limit trips, every level must be unwound by one
-- more error, and on LuaJIT each costs microseconds (thousands of levels would cost tens of ms past the
-- limit). Reset when an evaluation starts, like the gsub depth.
local PCALL_MAX_DEPTH = 200
local pcall_depth = 0
local function pcall_done(...)
  pcall_depth = pcall_depth - 1
  return ...
end
local function safe_pcall(f, ...)
  if pcall_depth >= PCALL_MAX_DEPTH then error("pcall nests more than " .. PCALL_MAX_DEPTH .. " deep", 2) end
  pcall_depth = pcall_depth + 1
  return pcall_done(pcall(f, ...))
end

-- The real xpcall runs its message handler where the error was raised, with hooks disabled (a hook that
-- raised leaves them off until the stack unwinds), so a looping handler would escape every limit.
-- Here the handler runs after the unwinding, under the hook like any other rule code.
local function safe_xpcall(f, handler, ...)
  charge(8)
  local results = pack(safe_pcall(f, ...))
  if results[1] then return unpack(results, 1, results.n) end
  return false, handler(results[2])
end

-- print: text goes to the current evaluation's output (at most PRINT_LIMIT bytes, then dropped); the
-- caller takes it with take_output(), so nothing is kept beyond the evaluation.
local function safe_print(...)
  local count = select("#", ...)
  charge(count + 8)
  local s = state
  if not s.active then return end
  local left = s.output_left
  if left <= 0 then s.output_dropped = true return end
  local parts = {}
  for i = 1, count do
    local text = tostring((select(i, ...)))
    if #text > left then text = string_sub(text, 1, left) end
    left = left - #text - 1
    parts[i] = text
    if left <= 0 then s.output_dropped = true break end
  end
  s.output_left = left
  local out = s.output
  if not out then out = {} s.output = out end
  out[#out + 1] = tbl_concat(parts, "\t")
end

-- Returns what rule code printed during the last run ({lines}, or nil) and forgets it.
function _M.take_output()
  local s = state
  local out = s.output
  if out and s.output_dropped then out[#out + 1] = "(more output was dropped: at most " .. PRINT_LIMIT ..
    " bytes are kept)" end
  s.output, s.output_dropped = nil, nil
  return out
end

local BASE = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = safe_pcall,
  select = select, tonumber = safe_tonumber, tostring = tostring, type = type, xpcall = safe_xpcall,
  unpack = safe_unpack, print = safe_print,
  string = read_only("string", safe_string_fields),
  -- random/randomseed left out: rules must give the same answer for the same cart.
  math = read_only("math", pick(math, { "abs", "ceil", "cos", "exp", "floor", "fmod", "huge", "log", "max",
    "min", "modf", "pi", "sin", "sqrt", "tan", "maxinteger", "mininteger", "tointeger", "type", "ult" })),
  table = read_only("table", { concat = safe_concat, insert = safe_insert, remove = safe_remove, sort = safe_sort,
    unpack = safe_unpack }),
  os = read_only("os", { time = os.time, clock = os.clock, date = safe_date }),
}
_M.BASE_NAMES = {}
for k in next, BASE do _M.BASE_NAMES[#_M.BASE_NAMES + 1] = k end
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

-- A plain copy of settings data (tables of strings, numbers, booleans; functions kept as they are).
-- Returns the copy, or nil and the problem (a table inside itself, or nested too deep).
local function deep_copy(v, seen, depth)
  if type(v) ~= "table" then return v end
  if seen[v] then return nil, "contains itself" end
  if depth > 16 then return nil, "is nested more than 16 tables deep" end
  seen[v] = true
  local out = {}
  for k, x in next, v do
    local c, problem = deep_copy(x, seen, depth + 1)
    if problem then return nil, problem end
    out[k] = c
  end
  seen[v] = nil
  return out
end
function _M.copy_data(v) return deep_copy(v, {}, 0) end

-- Builds the environment of one rule file.
-- hooks.on_set(name, value, line) is called for top-level assignments while the file loads and returns
-- nothing or an error message; hooks.suggest(name) may return a close known name.
-- control.freeze(values) ends loading: the environment then serves `values` (the validated copies), and
-- any assignment is an error (rules must not keep state between evaluations). A table read from it is a
-- fresh copy in every evaluation, so rule code cannot change what the next evaluation sees.
-- control.rerun(chunk) runs the file's top level again for one evaluation (files whose functions use
-- top-level locals: they get fresh ones each time) and returns what it assigned.
function _M.new_env(hooks)
  local values, frozen = {}, false
  local fresh, rerunning = nil, false
  local copies, copies_gen = {}, -1
  local env = {}
  setmetatable(env, {
    __index = function(_, name)
      if fresh then
        local v = fresh[name]
        if v ~= nil then return v end
      end
      local v = values[name]
      if v ~= nil then
        if frozen and type(v) == "table" then
          local gen = state.generation
          if copies_gen ~= gen then copies, copies_gen = {}, gen end
          local c = copies[name]
          if c == nil then
            charge(16)
            c = deep_copy(v, {}, 0)
            copies[name] = c
          end
          return c
        end
        return v
      end
      v = BASE[name]
      if v ~= nil then return v end
      if FORBIDDEN[name] then fail("'" .. tostring(name) .. "' is not allowed: " .. FORBIDDEN[name], 2) end
      local hint = hooks.suggest and hooks.suggest(name)
      fail("unknown name '" .. tostring(name) .. "'" .. (hint and (" (did you mean '" .. hint .. "'?)") or ""), 2)
    end,
    __newindex = function(_, name, value)
      if rerunning then
        fresh[name] = value
        return
      end
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
  function control.freeze(validated)
    frozen = true
    if validated then values = validated end
  end
  function control.values() return values end
  local function forget() fresh, rerunning = nil, false end
  function control.rerun(chunk)
    fresh, rerunning = {}, true
    state.after = forget   -- nothing of this evaluation is kept once it ends
    chunk()
    rerunning = false
    return fresh
  end
  return env, control
end

-- Whether fn reaches state other than the environment: a top-level local (an upvalue) that an evaluation
-- could change for the next one.
function _M.keeps_state(fn)
  for i = 1, 250 do
    local name = debug_getupvalue(fn, i)
    if name == nil then return false end
    if name ~= "_ENV" and name ~= "__loyalty_guard" then return true end
  end
  return true
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
-- Also returns, for Lua 5.4 (no bytecode to check), whether the text has no loop keyword and the token
-- count of its longest function (nested functions included), or nil when its blocks do not balance.
local LOOP_WORDS = { ["while"] = true, ["for"] = true, ["repeat"] = true, ["until"] = true, ["goto"] = true }
local BLOCK_WORDS = { ["if"] = true, ["do"] = true }
local function function_bodies(src)
  local find, match, sub = string.find, string.match, string.sub
  local out, pos, n, pending = {}, 1, #src, false
  local tokens, loop_free, longest, stack = 0, true, 0, {}
  while true do
    pos = select(2, find(src, "^%s*", pos)) + 1
    if pos > n then break end
    local c = sub(src, pos, pos)
    tokens = tokens + 1
    if c == "-" and sub(src, pos + 1, pos + 1) == "-" then
      tokens = tokens - 1
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
      if word == "function" then
        pending = true
        stack[#stack + 1] = tokens
      elseif BLOCK_WORDS[word] then
        stack[#stack + 1] = false
      elseif word == "end" then
        local start = stack[#stack]
        if start == nil then return nil end
        stack[#stack] = nil
        if start and tokens - start > longest then longest = tokens - start end
      elseif LOOP_WORDS[word] then
        loop_free = false
      end
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
  return out, #stack == 0 and longest or nil, loop_free
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

local new_guard  -- defined with the hook below

-- Compiles text only: bytecode is refused before load sees it, and mode "t" refuses it again.
-- Returns fn, nil, guarded: guarded is true when the file runs under call guards (LuaJIT, loop-free files,
-- and only if `guards` is asked for); fn then takes no arguments like any chunk.
-- Lua 5.4 emits at most 3 instructions per token (an operator and its MMBIN, a comparison turned into a
-- value, ...) plus the function's prologue and return: a sound bound on a loop-free function's run.
local function tokens_bound(tokens) return 3 * tokens + 8 end

-- A guarded function longer than this runs under the count hook instead: between two checks a guarded
-- file then runs at most about as many instructions as a hooked one, however costly each of them is.
local MAX_GUARDED = 2000

function _M.compile(source, chunkname, env, guards)
  if type(source) ~= "string" then return nil, "the file could not be read as text" end
  if source:byte(1) == 27 then return nil, "precompiled (binary) chunks are not accepted; rules must be text" end
  if guards and not source:find(GUARD_NAME, 1, true) then
    local bodies, longest_tokens, loop_free = function_bodies(source)
    if bodies and (jit or longest_tokens and loop_free) then
      local parts, last = { GUARD_PREFIX }, 0
      for _, at in ipairs(bodies) do
        parts[#parts + 1] = source:sub(last + 1, at)
        parts[#parts + 1] = GUARD_CALL
        last = at
      end
      parts[#parts + 1] = source:sub(last + 1)
      local fn = load(table.concat(parts), "=" .. chunkname, "t", env)
      local longest
      if jit then longest = fn and check_guarded(fn)
      elseif fn then longest = tokens_bound(longest_tokens) end
      if longest and longest <= MAX_GUARDED then
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

hook = function()
  local s = state
  if not s.tripped then
    s.steps = s.steps + s.interval
    local why = over_limit(s)
    if not why then
      s.next_check = s.steps + s.interval
      return
    end
    set_tripped(s, why)
  end
  -- the frame that owns the pcall must be able to remove the hook, and its message handler must not
  -- raise (it would be called again): never raise there
  local info = debug_getinfo(2, "f")
  if info and (info.func == run_frame or info.func == at_rule_line) then return end
  raise_tripped(s)
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

local string_mt = getmetatable("")

-- Message handler of run(): an error raised by a library function (or by a wrapper of one) carries no
-- position or the wrapper's; it is given the innermost rule-file line, where the analyst has to look.
at_rule_line = function(e)
  if type(e) == "string" and state.is_rule_source then
    -- rule files and fixtures are named by their file name alone; a path is one of the library's files
    local file = str_match(e, "^([^:\n]+%.lua):%d+: ")
    if not file or str_find(file, "/", 1, true) then
      local rule_file, line = locate(2)
      -- the wrapper's (or the engine's, after a tail call from rule code) position is no use to anyone
      if file then e = str_gsub(e, "^[^:\n]+%.lua:%d+: ", "", 1) end
      if rule_file then e = rule_file .. ":" .. line .. ": " .. e end
    end
  end
  return e
end

-- Starts the limits: called when the first rule code of an evaluation is about to run, so evaluations
-- that run no rule code (data-only settings) pay nothing for clocks, memory counts or hooks.
local function arm(s)
  s.armed = true
  s.old_hook, s.old_mask, s.old_count = debug_gethook()
  if s.old_hook then debug_sethook() end
  s.old_string_index = string_mt.__index
  s.deadline = os_clock() + s.time_limit_ms / 1000
  string_mt.__index = SAFE_STRING_INDEX
  s.capped = memcap_start and memcap_start(s.mem_limit * 1024, MAX_BLOCK) or false
  -- the soft memory check, for installs without the C core's allocation cap
  s.soft_memory = not s.capped
  if s.soft_memory then s.mem_base = collectgarbage("count") end
end

-- Runs fn(...) under the limits. Returns true, results... or false, err where err is
-- {limit = true, message, file, line} for a tripped limit or the raw error value otherwise.
-- limits: {instruction_limit, time_limit_ms, memory_limit_kb, hook_interval, is_rule_source = function(source)}
-- hook_all: count every instruction of fn (a rule file's main chunk). Otherwise fn is trusted engine code that
-- brackets its calls into rule functions with enter()/leave(): under Lua 5.4 an installed count hook makes
-- every instruction go through the hook dispatcher, so trusted code runs faster without it.
-- file: the rule file fn runs (for hook_all), named by a limit that trips where no rule frame is on the stack.
-- The limits are checked once more when fn returns, so rule code shorter than one hook interval (or one
-- slow library call) cannot pass a limit unseen.
local function run(limits, hook_all, fn, a, b, c, d)
  if state.active then
    -- nested use would share the global hook; evaluations never nest, so this is a programmer error
    error("loyalty.rules: evaluations cannot be nested")
  end
  local s = state
  s.active = true
  s.tripped, s.where_file, s.where_line = nil, nil, nil
  s.generation = s.generation + 1
  s.file = hook_all and limits.file or nil
  s.output, s.output_dropped, s.output_left = nil, nil, PRINT_LIMIT
  gsub_depth, pcall_depth = 0, 0
  s.steps = 0
  if s.step_limit ~= limits.instruction_limit or s.time_limit_ms ~= limits.time_limit_ms or
    s.mem_limit ~= limits.memory_limit_kb then
    s.step_limit = limits.instruction_limit
    s.time_limit_ms = limits.time_limit_ms
    s.mem_limit = limits.memory_limit_kb
    s.steps_text = "the rules took more than " .. s.step_limit .. " steps (is there a loop or a function calling " ..
      "itself that never ends?)"
    s.time_text = "the rules ran longer than " .. s.time_limit_ms .. " ms (is there a loop that never ends?)"
    s.memory_text = "the rules used more than " .. s.mem_limit .. " KB of memory"
  end
  local max_bytes = limits.memory_limit_kb * 1024
  s.max_bytes = max_bytes < MAX_BLOCK and max_bytes or MAX_BLOCK
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
  local ok, r1, r2, r3 = xpcall(fn, at_rule_line, a, b, c, d)
  -- the hook goes first: anything this frame calls while it is armed would be hooked (and may raise)
  if s.hooked or s.capped then
    debug_sethook()
    s.hooked = false
  end
  if s.after then
    s.after()
    s.after = nil
  end
  if s.armed then
    s.armed = false
    local refused, where_file, where_line
    if s.capped then
      s.capped = false
      local _
      _, refused, where_file, where_line = memcap_stop()
    end
    string_mt.__index = s.old_string_index
    if s.old_hook then debug_sethook(s.old_hook, s.old_mask, s.old_count) end
    s.old_hook, s.old_string_index = nil, nil
    -- the exit check: what ran since the last check (or without any) is held to the same limits
    if not s.tripped then
      local why
      if refused == 0 then refused = nil end
      if refused or s.soft_memory and collectgarbage("count") - s.mem_base > s.mem_limit then
        why = memory_message(s, refused)
      elseif os_clock() > s.deadline then why = time_message(s) end
      if why then
        s.tripped = { limit = true, message = why }
        -- where the refused allocation was made (Lua 5.4), an error raised at the rule's line, or else
        -- (set below) the file being run
        if where_file and s.is_rule_source and s.is_rule_source("=" .. where_file) then
          s.where_file, s.where_line = where_file, where_line
        elseif not ok and type(r1) == "string" then
          s.where_file, s.where_line = r1:match("^([%w_]+%.lua):(%d+):")
          s.where_line = tonumber(s.where_line)
        end
      end
    end
  end
  s.active = false
  if not ok and type(r1) == "string" and s.file and not str_match(r1, "^[^:\n]+%.lua:%d+: ") then
    -- no position (a C function, or a stack overflow that left no room for the message handler)
    if r1 == "error in error handling" then r1 = "the rules called functions too deeply (stack overflow)" end
    r1 = { message = r1, file = s.file }
  end
  if s.tripped then
    local t = s.tripped
    s.tripped = nil
    return false, { limit = true, message = t.message, file = s.where_file or s.file, line = s.where_line }
  end
  return ok, r1, r2, r3
end

-- Brackets calls into rule functions made by trusted code running under run(limits, false, ...).
-- guarded: the functions come from a file compiled with call guards, which need no hook.
-- file: the rule file they come from (named when a limit trips with no rule frame on the stack).
-- Otherwise steps are counted in whole hook intervals: a call shorter than one interval is bounded by the
-- caller's loop.
function _M.enter(guarded, file)
  local s = state
  if not s.armed then arm(s) end
  s.file = file
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

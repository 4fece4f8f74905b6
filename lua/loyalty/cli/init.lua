-- The `loyalty` command line: one argparse parser for every command (loyalty.cli.<name> adds its
-- own options with configure(cmd) and runs with run(args, out, err) -> exit code).
-- Exit codes: 0 done, 1 the thing asked for failed, 2 the command was used wrongly (one line).
local argparse = require "argparse"
local paths = require "loyalty.paths"

local _M = {}

_M.COMMANDS = {
  { "rules",   "Check, test, explain, replay and chart loyalty rule files; drift against the CRM." },
  { "call",    "Call one CRM endpoint or typed operation and print the reply." },
  { "outbox",  "Drain, inspect and retry the outbox of postings not yet delivered." },
  { "sandbox", "Run the local sandbox CRM (the lua-loyalty-sandbox rock)." },
}

local SANDBOX_MISSING = "the sandbox is its own rock, not installed here: luarocks install lua-loyalty-sandbox"
  .. " (it also builds the LuaJIT loyalty.core nginx needs)"

-- argparse's own --help prints and exits the process; ours records which command asked, so
-- main() can write it to `out` and return.
local function help_flag(cmd, state)
  cmd:add_help(false)
  cmd:flag("-h --help", "Show this help and exit."):action(function() state.help = cmd end)
  return cmd
end
_M.help_flag = help_flag

--- A converter for argparse: a number (whole = true: a whole number >= 0) or nil, message.
function _M.number(what, whole)
  return function(s)
    local n = tonumber(s)
    if not n or (whole and (n < 0 or n ~= math.floor(n))) then
      return nil, what .. " needs " .. (whole and "a whole number" or "a number") .. ", got '" .. tostring(s) .. "'"
    end
    return n
  end
end

--- A path the user typed: "examples/..." that is not here (an installed user, anywhere but a
-- checkout) means the examples installed with `rock`; a note on err says so.
function _M.resolve(path, err, rock)
  if type(path) ~= "string" or not path:match("^examples/") or require("lfs").attributes(path) then return path end
  local installed = paths.find(rock or "lua-loyalty", path)
  if not installed then return path end
  if err then err:write("(", path, " is not here: using ", rock or "lua-loyalty", "'s own, ", installed, ")\n") end
  return installed
end

--- A subcommand of `parent` with our help flag (for the command modules' configure()).
function _M.command(parent, state, name, description, epilog)
  local cmd = parent:command(name, description)
  if epilog then cmd:epilog(epilog) end
  return help_flag(cmd, state)
end

local function build(state)
  local titles = {}
  for _, p in ipairs(require("loyalty.providers").all()) do titles[#titles + 1] = p.title end
  local parser = argparse("loyalty", "lua-loyalty " .. paths.VERSION ..
    ": loyalty CRMs (" .. table.concat(titles, ", ") .. ") for Lua and OpenResty storefronts.")
  help_flag(parser, state)
  parser:flag("--version", "Print the version and exit."):action(function() state.version = true end)
  parser:flag("--examples-dir", "Print where the installed examples (rules, settings files) are, and exit.")
    :action(function() state.examples = true end)
  parser:command_target("command")
  parser:epilog("`loyalty <command> --help` describes each command.")
  state.modules = {}
  for _, c in ipairs(_M.COMMANDS) do
    local ok, mod = pcall(require, "loyalty.cli." .. c[1])
    -- Only the sandbox may be absent (its own rock); anything else failing to load is a bug.
    if not ok and not (c[1] == "sandbox" and tostring(mod):find("module 'loyalty.cli.sandbox' not found", 1, true)) then
      error(mod, 0)
    end
    local cmd = _M.command(parser, state, c[1], c[2])
    if ok then
      state.modules[c[1]] = mod
      mod.configure(cmd, state)
    else
      -- Product rock alone: accept anything and say which rock to install.
      cmd:handle_options(false)
      cmd:argument("args"):args("*")
    end
  end
  return parser
end

-- The words of argv naming commands, for the one-line usage error ("loyalty outbox drain: ...").
local function where(argv)
  local words = { "loyalty" }
  local subs = { rules = { check = 1, test = 1, explain = 1 }, outbox = { drain = 1, status = 1, retry = 1 } }
  local first = argv[1]
  for _, c in ipairs(_M.COMMANDS) do
    if c[1] == first then
      words[2] = first
      if subs[first] and subs[first][argv[2]] then words[3] = argv[2] end
    end
  end
  return table.concat(words, " ")
end

-- Commands write several pieces at once; a caller's writer may take one string (specs' buffers).
local function writer(w)
  return {
    file = w,
    write = function(self, ...)
      w:write(table.concat({ ... }))
      return self
    end,
    flush = function() if w.flush then w:flush() end end,
  }
end

--- main(argv [, out, err]) -> exit code. out/err: anything with :write (default io.stdout/stderr);
-- commands see them wrapped, the original as `.file`.
function _M.main(argv, out, err)
  out, err = writer(out or io.stdout), writer(err or io.stderr)
  local state = {}
  local parser = build(state)
  local ok, args = parser:pparse(argv)
  if state.help then
    out:write(state.help:get_help(), "\n")
    return 0
  end
  if state.version then
    out:write("lua-loyalty ", paths.VERSION, " (", type(jit) == "table" and jit.version or _VERSION, ")\n")
    return 0
  end
  if state.examples then
    local dir, e = paths.find("lua-loyalty", "examples")
    if not dir then err:write("loyalty: ", e, "\n") return 1 end
    out:write(dir, "\n")
    return 0
  end
  if not ok then
    if #argv == 0 then
      err:write(parser:get_usage(), "\n")
      return 2
    end
    local msg = tostring(args):gsub("\nDid you mean", "; did you mean"):gsub("\n", " ")
    err:write(where(argv), ": ", msg, " (see --help)\n")
    return 2
  end
  local mod = state.modules[args.command]
  if not mod then
    err:write("loyalty ", args.command, ": ", SANDBOX_MISSING, "\n")
    return 1
  end
  return mod.run(args, out, err) or 0
end

--- parse(argv) -> args | nil, message: what main would run, without running it (for docs checks).
function _M.parse(argv)
  local state = {}
  local ok, args = build(state):pparse(argv)
  if state.help or state.version or state.examples then return { command = "(flag)" } end
  if not ok then return nil, tostring(args) end
  return args
end

--- For a command module's own main(argv, out, err): `loyalty <name> argv...`.
function _M.main_for(name, argv, out, err)
  local full = { name }
  for i = 1, #argv do full[#full + 1] = argv[i] end
  return _M.main(full, out, err)
end

return _M

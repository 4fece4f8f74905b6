--[==[ loyalty.rules: analyst-edited rule files, sandboxed. Full guide: docs/rules.md.

A rule set is a directory: program.lua (required: currency, rounding, round_per), earn.lua, redemption.lua,
categories.lua, and fixtures/*.lua|*.json. Each file sets plain settings (`max_points = 5000`) and may define
the small functions `bonus` (earn.lua) and `refuse` (redemption.lua).

  rules.load(dir [, opts])        -> ruleset | nil, err
      opts: { instruction_limit, time_limit_ms, memory_limit_kb, hook_interval,
              categories = { known category names } }   -- unknown ones become ruleset.warnings
  rules.check(dir [, opts])       -> report { errors = {err...}, warnings = {err...} }, ruleset | nil
  rules.watch(dir [, opts])       -> watcher   (opts also: check_interval_ms = 1000, clock = fn() -> ms,
                                                run_fixtures = true, last_good = dir (each accepted
                                                set saved there, used when the files fail),
                                                log = fn(level, event, fields))
  rules.fixtures_verdict(ruleset) -> nil | err   (the watcher's test: every fixture passes)
      watcher:current()  -> last good ruleset | nil, err      watcher:last_error() -> err | nil
      watcher:check()    -> true if a new version was taken
  ruleset.hash (16 hex digits; audit identity of file names + contents, not security), ruleset.files,
  ruleset.currency, ruleset.warnings
  ruleset:earn(customer, cart)                         -> { points, lines = {trace...}, hash, ... } | nil, err
  ruleset:redemption(customer, [cart [, requested]])   -> { allowed, min, max, multiple_of, points, value,
                                                            reason, limited_by, hash, ... } | nil, err
  ruleset:line_attributes(line)                        -> { {name=, value=}, ... } sorted by name
  ruleset:explain(customer, cart [, requested])        -> text
  ruleset:run_fixtures()                               -> { passed, failed, results = {{name, ok, diff}}, hash }
  ruleset:round(x)                                     -> x rounded by the declared policy (for returns)

  customer: { tier = "GOLD", points = 1234 }
  cart: { currency = "INR", lines = { { sku, qty, price, amount, categories = {...}, discount } }, shipping, tax,
          total }
  err: a loyalty.errors table { kind = "rules", file, line, message } (message names file and line in plain
       words; tostring(err) gives "loyalty: rules error: " .. message)
]==]
local _M = {}

local sandbox = require("loyalty.rules.sandbox")
local vocab = require("loyalty.rules.vocabulary")
local engine = require("loyalty.rules.engine")
local hash = require("loyalty.rules.hash")
local files = require("loyalty.rules.files")
local explain = require("loyalty.rules.explain")
local fixtures = require("loyalty.rules.fixtures")
local namecheck = require("loyalty.rules.names")
local loyalty_env = require("loyalty.env")
local util = require("loyalty.util")
local errors = require("loyalty.errors")
local schema = require("loyalty.schema")

local function rules_error(problem, file, line)
  local message = problem
  if file and line then message = problem .. " in " .. file .. " line " .. line
  elseif file then message = problem .. " in " .. file end
  return errors.new { kind = "rules", file = file, line = line, message = message }
end
_M.error = rules_error

local Ruleset = {}
Ruleset.__index = Ruleset

local LIMIT_KEYS = { "instruction_limit", "time_limit_ms", "memory_limit_kb", "hook_interval" }

-- The options of check, load and watch (loyalty.schema fields); the limits default to the sandbox's.
local OPTIONS = {
  categories = { type = "table", doc = "known category names" },
  tiers = { type = "table", doc = "known tier names" },
  skus = { type = "table", doc = "known SKUs" },
  check_interval_ms = { type = "number", min = 0, doc = "watch: milliseconds between checks" },
  clock = { type = "function", doc = "watch: milliseconds now" },
  run_fixtures = "boolean",
  last_good = { type = "string", doc = "a directory path" },
  log = { type = "function", doc = "log(level, event, fields)" },
}
for _, k in ipairs(LIMIT_KEYS) do OPTIONS[k] = { type = "number", above = 0, default = sandbox.DEFAULTS[k] } end

local function build_limits(opts)
  local limits = {}
  for _, k in ipairs(LIMIT_KEYS) do limits[k] = opts[k] end
  return limits
end

-- Options are code: a wrong key or type raises (at the caller of check, load or watch).
local function check_opts(opts)
  return schema.assert(OPTIONS, opts or {}, "loyalty.rules", 3)
end

local RULE_SOURCES = {}
for _, f in ipairs(vocab.FILES) do RULE_SOURCES["=" .. f] = true end
local function is_rule_source(src) return RULE_SOURCES[src] == true end

-- Reads the rule files of dir: { [file] = source }, names present, problems, skipped (stray files).
local function read_dir(dir)
  local sources, present, problems, skipped = {}, {}, {}, {}
  for _, f in ipairs(vocab.FILES) do
    local src = util.read_file(dir .. "/" .. f)
    if src then sources[f] = src; present[#present + 1] = f end
  end
  local known = vocab.set_of(vocab.FILES)
  for _, f in ipairs(files.list(dir, { ".lua" })) do
    if not known[f] then
      local hint = vocab.suggest(f, vocab.FILES)
      -- a stray copy (`earn (copy).lua`) is reported and skipped: it must not block the rule set
      skipped[#skipped + 1] = rules_error("'" .. f .. "' is not a rule file name, so it was skipped" ..
        (hint and (" (did you mean '" .. hint .. "'?)") or "") ..
        "; rule files are program.lua, earn.lua, redemption.lua and categories.lua", f)
    end
  end
  if not sources["program.lua"] then
    problems[#problems + 1] = rules_error("the rule set has no program.lua (it declares currency and rounding)",
      dir .. "/program.lua")
  end
  return sources, present, problems, skipped
end

-- Rule files are small policy sheets; a bigger one is refused before it is compiled.
local MAX_FILE_BYTES = 256 * 1024

-- Runs one file's source in a fresh environment; returns settings (validated copies), setting lines,
-- whether the file runs under call guards, and a function that re-runs its top level for one evaluation
-- (only for files whose functions keep top-level locals).
local function run_file(file, src, limits, problems, output)
  local allowed = vocab.SETTINGS[file]
  local names = vocab.names(file)
  local lines = {}
  local hooks = {
    suggest = function(name)
      local all = {}
      for _, n in ipairs(names) do all[#all + 1] = n end
      for _, n in ipairs(sandbox.BASE_NAMES) do all[#all + 1] = n end
      return vocab.suggest(name, all)
    end,
    on_set = function(name, value, line)
      if type(name) ~= "string" or not allowed[name] then
        local home = vocab.home_of(name)
        local e
        if home then
          e = rules_error("the setting '" .. name .. "' belongs in " .. home .. " but was found", file, line)
        else
          local hint = vocab.suggest(name, names)
          e = rules_error("unknown setting '" .. tostring(name) .. "'", file, line)
          e.message = e.message .. (hint and (" (did you mean '" .. hint .. "'?)") or
            (" (" .. file .. " settings are: " .. table.concat(names, ", ") .. "; use 'local' for your own names)"))
        end
        problems[#problems + 1] = e
        return true
      end
      local p = vocab.check_value(name, value)
      if p then
        -- the entry that is wrong, not the statement's last line
        local ok_line, at = pcall(namecheck.value_line, src, name, value, vocab.check_value)
        problems[#problems + 1] = rules_error("'" .. name .. "' " .. p, file, ok_line and at or line)
        return true
      end
      lines[name] = line
    end,
  }
  if #src > MAX_FILE_BYTES then
    problems[#problems + 1] = rules_error("the file is " .. #src .. " bytes; rule files may have at most " ..
      MAX_FILE_BYTES, file)
    return nil
  end
  local env, control = sandbox.new_env(hooks)
  local fn, err, guarded = sandbox.compile(src, file, env, true)
  if not fn then
    local d = sandbox.describe_error(err, file)
    d.line, d.message = namecheck.blame_line(src, d.line, d.message)
    problems[#problems + 1] = rules_error(d.message, d.file or file, d.line)
    return nil
  end
  limits.file = file
  local ok, run_err = sandbox.run(limits, true, fn)
  limits.file = nil
  for _, line in ipairs(sandbox.take_output() or {}) do output[#output + 1] = line end
  if not ok then
    control.freeze()
    local d = sandbox.describe_error(run_err, file)
    problems[#problems + 1] = rules_error(d.message, d.file or file, d.line)
    return nil
  end
  -- Settings were checked when assigned, but the file may have changed a table after that: copy every
  -- value out and check the copy. The engine and later evaluations only ever see the copies.
  local settings, bad = {}, false
  for name, value in pairs(control.values()) do
    local copy, problem = sandbox.copy_data(value)
    problem = problem and ("'" .. name .. "' " .. problem) or
      (vocab.check_value(name, copy) and ("'" .. name .. "' was changed after it was set and now " ..
        vocab.check_value(name, copy)))
    if problem then
      problems[#problems + 1] = rules_error(problem, file, lines[name])
      bad = true
    end
    settings[name] = copy
  end
  control.freeze(settings)
  if bad then return nil end
  for _, req in ipairs(vocab.REQUIRED[file]) do
    if settings[req] == nil then
      problems[#problems + 1] = rules_error(file .. " does not set '" .. req .. "', which it needs (" ..
        vocab.SETTINGS[file][req] .. ")", file)
    end
  end
  -- A function that uses a top-level local could carry state from one evaluation to the next: such a
  -- file's top level runs again (under the limits) before each evaluation that calls it.
  local rerun
  for _, v in pairs(settings) do
    if type(v) == "function" and sandbox.keeps_state(v) then
      rerun = function() return control.rerun(fn) end
      break
    end
  end
  return settings, lines, guarded, rerun
end

local function attribute_list(map)
  local out = {}
  for key, attrs in pairs(map or {}) do
    local list = {}
    for name, value in pairs(attrs) do list[#list + 1] = { name = name, value = value } end
    table.sort(list, function(a, b) return a.name < b.name end)
    out[key] = list
  end
  return out
end

-- Tier tables keyed as the store compares tiers (a `Gold` key is reported by check and still means GOLD).
local function tier_keys(t)
  local out = {}
  for k, v in pairs(t or {}) do out[namecheck.tier(k)] = v end
  return out
end

local function compile_settings(s, guarded, reruns, setting_lines)
  local p = s["program.lua"]
  local c = { currency = p.currency, rounding = p.rounding, round_per = p.round_per,
    round = engine.ROUNDERS[p.rounding] }
  local e = s["earn.lua"]
  if e then
    c.earn = engine.prepare_earn({
      points_earned = e.points_earned, for_every = e.for_every, minimum_order = e.minimum_order,
      cap_per_order = e.cap_per_order,
      -- shipping and tax earn nothing unless a rule set says otherwise
      exclude_shipping = e.exclude_shipping ~= false, exclude_tax = e.exclude_tax ~= false,
      excluded_categories = vocab.set_of(e.exclude_categories), excluded_skus = vocab.set_of(e.exclude_skus),
      category_multipliers = e.category_multipliers or {}, sku_multipliers = e.sku_multipliers or {},
      tier_multipliers = tier_keys(e.tier_multipliers), bonus = e.bonus, bonus_guarded = guarded["earn.lua"],
      bonus_rerun = reruns["earn.lua"], bonus_line = setting_lines["earn.lua"].bonus,
    })
  end
  local r = s["redemption.lua"]
  if r then
    c.redemption = engine.prepare_redemption({
      point_value = r.point_value, min_points = r.min_points, max_points = r.max_points,
      multiple_of = r.multiple_of, max_share = r.max_share, tiers = tier_keys(r.tiers), refuse = r.refuse,
      refuse_guarded = guarded["redemption.lua"], refuse_rerun = reruns["redemption.lua"],
      refuse_line = setting_lines["redemption.lua"].refuse,
      refuse_categories = vocab.set_of(r.refuse_categories), refuse_skus = vocab.set_of(r.refuse_skus) })
  end
  local cat = s["categories.lua"]
  if cat then
    local rank = {}
    for i, name in ipairs(cat.precedence or {}) do if not rank[name] then rank[name] = i end end
    c.categories = { attributes = attribute_list(cat.attributes), sku_attributes = attribute_list(cat.sku_attributes),
      rank = rank }
  end
  return c
end

function _M.check(dir, opts)
  if type(dir) ~= "string" then error("loyalty.rules: dir must be a string", 2) end
  opts = check_opts(opts)
  local limits = build_limits(opts)
  limits.is_rule_source = is_rule_source
  local report = { errors = {}, warnings = {} }
  local sources, present, problems, skipped = read_dir(dir)
  for _, p in ipairs(problems) do report.errors[#report.errors + 1] = p end
  for _, p in ipairs(skipped) do report.warnings[#report.warnings + 1] = p end
  local output = {}
  local settings, setting_lines, guarded_files, reruns = {}, {}, {}, {}
  for _, f in ipairs(present) do
    local s, lines, guarded, rerun = run_file(f, sources[f], limits, report.errors, output)
    settings[f], setting_lines[f], guarded_files[f], reruns[f] = s, lines, guarded, rerun
  end
  if #report.errors > 0 then return report, nil end
  -- every tier, category, SKU, field and name the rules use, resolved against what exists (loyalty.rules.names)
  local loaded = {}
  for _, f in ipairs(present) do loaded[f] = sources[f] end
  -- a fault in the checker must never stop a rule set from loading: it becomes a warning
  local ok_names, name_problems = pcall(function()
    local mentions, unreadable = namecheck.fixture_mentions(dir, limits)
    local list = namecheck.check({ sources = loaded, settings = settings, categories = opts.categories,
      tiers = opts.tiers, skus = opts.skus, fixture_names = mentions })
    for _, u in ipairs(unreadable) do list[#list + 1] = u end
    return list
  end)
  if not ok_names then
    name_problems = { { problem = "the names in the rules could not be checked: " .. tostring(name_problems) } }
  end
  for _, p in ipairs(name_problems) do
    local w = p.located and rules_error(p.problem) or rules_error(p.problem, p.file, p.line)
    w.file = p.file
    if p.hint then w.message = w.message .. " " .. p.hint end
    report.warnings[#report.warnings + 1] = w
  end
  local parts = {}
  for _, f in ipairs(present) do parts[#parts + 1] = f; parts[#parts + 1] = sources[f] end
  local rs = setmetatable({
    dir = dir, files = present, hash = hash.hex(parts), currency = settings["program.lua"].currency,
    limits = limits, compiled = compile_settings(settings, guarded_files, reruns, setting_lines),
    warnings = report.warnings, output = output, settings = settings, sources = loaded,
  }, Ruleset)
  return report, rs
end

function _M.load(dir, opts)
  local report, rs = _M.check(dir, opts)
  if not rs then return nil, report.errors[1] end
  return rs
end

-- Runs body under the guard and shapes failures as rules errors.
-- What rule code printed comes back with that evaluation's result (res.output) and is not kept.
local function evaluate(self, body, a, b, c)
  local ok, res = sandbox.run(self.limits, false, body, self, a, b, c)
  local output = sandbox.take_output()
  if ok then
    res.hash = self.hash
    res.output = output
    return res
  end
  if type(res) == "table" and res.input then return nil, rules_error(res.message) end
  local d = sandbox.describe_error(res)
  return nil, rules_error(d.message, d.file, d.line)
end

-- Tiers are compared as the store compares them: in capitals (loyalty.rules.names.tier).
local function store_customer(customer)
  local cu = engine.normalize_customer(customer)
  cu.tier = namecheck.tier(cu.tier)
  return cu
end

local function earn_body(self, customer, cart)
  local c = self.compiled
  return engine.earn(c, store_customer(customer), engine.normalize_cart(cart, c.currency))
end

local function redemption_body(self, customer, cart, requested)
  local c = self.compiled
  if requested ~= nil and (type(requested) ~= "number" or not (requested >= 0 and requested <= engine.LIMIT)) then
    error({ input = true, message = "the requested points should be a number, 0 or more" }, 0)
  end
  local r = c.redemption
  -- without a cart (a balance summary) the share-of-order limit cannot apply
  local ca = cart == nil and { currency = c.currency, lines = {}, shipping = 0, tax = 0 }
    or engine.redemption_cart(cart, c.currency, r.refuse ~= nil, r.refuse_categories, r.refuse_skus)
  return engine.redemption(c, store_customer(customer), ca, requested)
end

function Ruleset:earn(customer, cart)
  if not self.compiled.earn then
    return nil, rules_error("this rule set has no earn.lua, so it cannot estimate points")
  end
  return evaluate(self, earn_body, customer, cart)
end

function Ruleset:redemption(customer, cart, requested_points)
  if not self.compiled.redemption then
    return nil, rules_error("this rule set has no redemption.lua, so it cannot check redemptions")
  end
  return evaluate(self, redemption_body, customer, cart, requested_points)
end

function Ruleset:line_attributes(line)
  if type(line) ~= "table" then error("loyalty.rules: line_attributes(line) needs a cart line table", 2) end
  return engine.line_attributes(self.compiled, line)
end

function Ruleset:explain(customer, cart, requested_points)
  local e, e_err, r, r_err
  if self.compiled.earn then e, e_err = self:earn(customer, cart) else e_err = "this rule set has no earn.lua" end
  if self.compiled.redemption then r, r_err = self:redemption(customer, cart, requested_points)
  else r_err = "this rule set has no redemption.lua" end
  -- bonus may have left odd values in its copy of the lines; the explanation says so rather than raising
  local ok, text = pcall(explain.text, self, type(customer) == "table" and customer or {}, e, e_err, r, r_err)
  if ok then return text end
  return "Rule set " .. self.hash .. ": the result could not be explained (" .. tostring(text) .. ")\n"
end

function Ruleset:run_fixtures()
  return fixtures.run_all(self)
end

function Ruleset:round(x)
  return self.compiled.round(x)
end

-- The watcher. A check stats the rule folder, its fixtures folder and every file in them with
-- lfs.attributes into reused tables (inode, size, mtime, ctime): no file is opened and nothing
-- is allocated unless something changed. mtimes have whole seconds, so while any file's mtime
-- is under two seconds old a same-size edit within that second is caught by comparing
-- contents as well (git's "racy" rule).
local STAT_FIELDS = { "ino", "size", "modification", "change", "mode" }

-- The rule files and both folders; the fixture files too while the files on disk are rejected
-- (fixing a fixture can make them acceptable; once accepted, a fixture edit alone changes nothing
-- in force, and fixtures are run again on the next rule edit).
local function watched_paths(dir, with_fixtures)
  local paths = { dir, dir .. "/fixtures" }
  for _, f in ipairs(vocab.FILES) do paths[#paths + 1] = dir .. "/" .. f end
  if with_fixtures then
    for _, f in ipairs(fixtures.list(dir)) do paths[#paths + 1] = dir .. "/fixtures/" .. f end
  end
  return paths
end

local function content_sig(paths)
  local parts = {}
  for i, p in ipairs(paths) do parts[i] = util.read_file(p) or "\0absent" end
  return hash.hex(parts)
end

local function emit(self, level, event, fields)
  if self.log then pcall(self.log, level, event, fields) end
end

-- Last good rule sets: <last_good>/rules-<hash>/ holds the files of each accepted version
-- (written under a temporary name, then renamed), and <last_good>/current names the one in
-- force (written to a temporary file, then renamed): a reader never sees half of either.
local LAST_GOOD_KEEP = 3

local function copy_file(from, to)
  local data = util.read_file(from)
  if not data then return true end
  return util.write_file(to, data)
end

local function persist(store, rs)
  local ok, err = files.mkdir_p(store)
  if not ok then return nil, err end
  local name = "rules-" .. rs.hash
  local final = store .. "/" .. name
  if files.stat(final .. "/program.lua", "mode") ~= "file" then
    local tmp = store .. "/.tmp-" .. util.unique_name()
    ok, err = files.mkdir_p(tmp .. "/fixtures")
    if not ok then return nil, err end
    for _, f in ipairs(rs.files) do
      ok, err = copy_file(rs.dir .. "/" .. f, tmp .. "/" .. f)
      if ok and rs.sources and rs.sources[f] then
        -- the very text that was accepted, not what the file holds now
        ok, err = util.write_atomic(tmp .. "/" .. f, rs.sources[f])
      end
      if not ok then files.remove_tree(tmp) return nil, err end
    end
    for _, f in ipairs(fixtures.list(rs.dir)) do
      ok, err = copy_file(rs.dir .. "/fixtures/" .. f, tmp .. "/fixtures/" .. f)
      if not ok then files.remove_tree(tmp) return nil, err end
    end
    local renamed, rerr = os.rename(tmp, final)
    if not renamed then
      files.remove_tree(tmp)
      -- another worker saved the same version first
      if files.stat(final .. "/program.lua", "mode") ~= "file" then return nil, rerr end
    end
  end
  ok, err = util.write_atomic(store .. "/current", name .. "\n" .. rs.source_dir .. "\n")
  if not ok then return nil, err end
  -- keep the newest few versions
  local versions = {}
  local lfs = files.lfs
  for entry in lfs.dir(store) do
    if entry:match("^rules%-%x+$") and entry ~= name then
      versions[#versions + 1] = { entry, lfs.attributes(store .. "/" .. entry, "modification") or 0 }
    end
  end
  table.sort(versions, function(a, b) return a[2] > b[2] end)
  for i = LAST_GOOD_KEEP, #versions do files.remove_tree(store .. "/" .. versions[i][1]) end
  return final
end

-- The saved rule set for source_dir, or nil, reason.
local function load_last_good(store, source_dir, opts)
  local pointer = util.read_file(store .. "/current")
  if not pointer then return nil, "no last good rule set saved in " .. store end
  local name, saved_for = pointer:match("^(rules%-%x+)\n([^\n]*)")
  if not name then return nil, store .. "/current is not a rule set pointer" end
  if saved_for ~= source_dir then
    return nil, store .. " holds the rules of " .. saved_for .. ", not " .. source_dir
  end
  local rs, err = _M.load(store .. "/" .. name, opts)
  if not rs then return nil, err.message end
  return rs, store .. "/" .. name
end

--- The watcher's test before it takes a rule set: nil when every fixture passes, else the
-- rules error it logs ("N fixture(s) failed, first '...': ..." in fixtures/<file>).
function _M.fixtures_verdict(rs)
  local res = rs:run_fixtures()
  if res.failed == 0 then return nil end
  local first
  for _, r in ipairs(res.results) do if not r.ok then first = r break end end
  return rules_error(res.failed .. " fixture(s) failed, first '" .. first.name .. "': " ..
    table.concat(first.diff, "; "), "fixtures/" .. first.file)
end

local Watcher = {}
Watcher.__index = Watcher

--- watch(dir, opts): opts as load, plus check_interval_ms, clock, run_fixtures, and
--   last_good = "<directory>": every accepted version is saved there; when the files in dir fail
--     (at start or on an edit) the saved version is used (or kept);
--   log = function(level, event, fields): "rules_loaded" (info), "rules_rejected" (error: file,
--     line, reason; once per edit), "rules_last_good" (warn: started from the saved version).
function _M.watch(dir, opts)
  if type(dir) ~= "string" then error("loyalty.rules: dir must be a string", 2) end
  opts = check_opts(opts)
  local load_opts = {}
  for k, v in pairs(opts) do
    if k ~= "last_good" and k ~= "log" and k ~= "check_interval_ms" and k ~= "clock" and k ~= "run_fixtures" then
      load_opts[k] = v
    end
  end
  local w = setmetatable({ dir = dir, opts = load_opts, interval = opts.check_interval_ms or 1000,
    clock = opts.clock or loyalty_env.time_ms, run_fixtures = opts.run_fixtures ~= false, last_good = opts.last_good,
    log = opts.log, stats = {}, checks = 0, reloads = 0, rejections = 0 }, Watcher)
  w:check()
  if not w.good and w.last_good then
    local rs, where = load_last_good(w.last_good, dir, load_opts)
    if rs then
      w.good, w.from_last_good = rs, where
      emit(w, "warn", "rules_last_good", { dir = dir, hash = rs.hash, path = where,
                                             reason = w.error and w.error.message })
    end
  end
  return w
end

-- True when any watched path's stat differs from the last check (and records the new ones).
local function stats_changed(self)
  local paths, stats = self.paths, self.stats
  local changed, newest = false, 0
  for i = 1, #paths do
    local st = stats[i]
    if not st then st = {} stats[i] = st changed = true end
    local ino, size, mtime, ctime, mode = st.ino, st.size, st.modification, st.change, st.mode
    if not files.stat(paths[i], st) then
      for k = 1, #STAT_FIELDS do st[STAT_FIELDS[k]] = nil end
    end
    if st.ino ~= ino or st.size ~= size or st.modification ~= mtime or st.change ~= ctime or st.mode ~= mode then
      changed = true
    end
    local t = st.modification or 0
    if t > newest then newest = t end
  end
  return changed, newest
end

-- Picks the paths to stat for the current state and records their stats.
function Watcher:rescan()
  self.paths, self.stats = watched_paths(self.dir, self.error ~= nil), {}
  stats_changed(self)
end

-- Everything a rule set is made of, fixtures included (read only when stats changed or are racy).
function Watcher:content()
  return content_sig(watched_paths(self.dir, true))
end

-- Loads the directory if it changed; keeps the last good rule set when the new one is bad.
function Watcher:check()
  self.next_check = self.clock() + self.interval
  self.checks = self.checks + 1
  if self.paths then
    local changed, newest = stats_changed(self)
    if not changed then
      if newest < os.time() - 1 then return false end
      -- a file changed within the last second or two: its mtime alone cannot tell
      if self:content() == self.seen then return false end
    end
  end
  self:rescan()
  local sig = self:content()
  if sig == self.seen then return false end
  self.seen = sig
  local rs, err = _M.load(self.dir, self.opts)
  if rs and self.run_fixtures then
    err = _M.fixtures_verdict(rs)
    if err then rs = nil end
  end
  if not rs then
    self.error = err
    self:rescan()
    self.rejections = self.rejections + 1
    emit(self, "error", "rules_rejected", {
      dir = self.dir, file = err.file, line = err.line, reason = err.message,
      kept = self.good and self.good.hash or "none",
    })
    return false
  end
  rs.source_dir = self.dir
  local previous = self.good
  self.good, self.error, self.from_last_good = rs, nil, nil
  self:rescan() -- an edit made meanwhile is younger than the racy window: the next check reads it
  self.reloads = self.reloads + 1
  local fields = { dir = self.dir, hash = rs.hash, previous = previous and previous.hash or "none" }
  if self.last_good then
    local where, perr = persist(self.last_good, rs)
    if where then
      fields.saved = where
    else
      emit(self, "error", "rules_save_failed", { dir = self.dir, last_good = self.last_good, reason = tostring(perr) })
    end
  end
  emit(self, "info", "rules_loaded", fields)
  return true
end

function Watcher:current()
  if self.clock() >= self.next_check then self:check() end
  if self.good then return self.good end
  return nil, self.error
end

function Watcher:last_error()
  return self.error
end

--- Counters for metrics: checks, reloads (accepted versions), rejections (rejected edits).
function Watcher:counters()
  return { checks = self.checks, reloads = self.reloads, rejections = self.rejections,
           from_last_good = self.from_last_good ~= nil }
end

return _M

-- Name resolution for `rules check`: every tier, category, SKU, customer/cart/line field and name a rule file
-- uses is looked up against what exists, and reported with file, line and "did you mean" when it is not there.
-- Works on the text (lexer tokens), so names inside functions that no fixture runs are checked too.
local _M = {}

local lexer = require("loyalty.rules.lexer")
local vocab = require("loyalty.rules.vocabulary")
local sandbox = require("loyalty.rules.sandbox")

local format, concat = string.format, table.concat

-- The store upper-cases the CRM's tier names before any rule sees them; every comparison of tiers does the same.
function _M.tier(name)
  if type(name) ~= "string" then return name end
  return name:upper()
end

-- Fields of the copies rule functions receive (engine.normalize_cart / redemption_cart / normalize_customer).
local FIELDS = {
  line = { "amount", "base", "categories", "discount", "index", "price", "qty", "sku" },
  refuse_line = { "amount", "categories", "discount", "index", "price", "qty", "sku" },
  customer = { "points", "tier" },
  cart = { "currency", "lines", "shipping", "subtotal", "tax", "total" },
  refuse_cart = { "currency", "lines", "shipping", "tax", "total" },
}
local ROLE_WORDS = { line = "a cart line", refuse_line = "a cart line", customer = "the customer", cart = "the cart",
  refuse_cart = "the cart" }
local LINE_OF = { cart = "line", refuse_cart = "refuse_line" }
local FIELD_SET = {}
for role, list in pairs(FIELDS) do FIELD_SET[role] = vocab.set_of(list) end
local FUNCTION_ROLES = { bonus = { "line", "customer", "cart" }, refuse = { "customer", "refuse_cart" } }

-- Edit distance counting a swap of two neighbours as one edit (GLOD -> GOLD, teir -> tier).
local function distance(a, b)
  a, b = a:lower(), b:lower()
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

-- The closest candidate within a third of the word's length (at least 1 edit), or nil.
local function suggest(word, candidates)
  if type(word) ~= "string" then return nil end
  local best, best_d
  local allowed = math.max(1, math.floor(#word / 3))
  for _, c in ipairs(candidates or {}) do
    if type(c) == "string" and c ~= word then
      local d = distance(word, c)
      if d <= allowed and (not best_d or d < best_d or (d == best_d and c < best)) then best, best_d = c, d end
    end
  end
  if best then return best end
  -- a longer or shorter spelling of a name (`maximum` for `max`, `cat` for `categories`)
  local lw = word:lower()
  for _, c in ipairs(candidates or {}) do
    if type(c) == "string" and #c >= 3 and #lw >= 3 and c ~= word then
      local lc = c:lower()
      if (lw:sub(1, #lc) == lc or lc:sub(1, #lw) == lw) and (not best or #c > #best) then best = c end
    end
  end
  return best
end
_M.suggest = suggest

local function hint_text(hint) return hint and (" (did you mean '" .. hint .. "'?)") or "" end

-- Constructor `{ ... }` starting at tokens[i]: { keys = {[key] = {line, tree}}, items = {{value, line}} }, next i.
local function skip_value(t, i)
  local depth = 0
  while t[i] do
    local v, k = t[i].value, t[i].kind
    if k == "op" and (v == "{" or v == "(" or v == "[") then depth = depth + 1
    elseif k == "op" and (v == "}" or v == ")" or v == "]") then
      if depth == 0 then return i end
      depth = depth - 1
    elseif k == "keyword" and (v == "function" or v == "if" or v == "do" or v == "repeat") then depth = depth + 1
    elseif k == "keyword" and (v == "end" or v == "until") then depth = depth - 1
    elseif depth == 0 and k == "op" and (v == "," or v == ";") then return i end
    i = i + 1
  end
  return i
end

local MAX_DEPTH = 40  -- deeper tables are skipped, not walked: no input may exhaust the C stack

local function constructor(t, i, depth)
  depth = depth or 1
  local tree = { keys = {}, items = {}, line = t[i].line }
  if depth > MAX_DEPTH then
    local stop = skip_value(t, i + 1)
    return tree, stop
  end
  i = i + 1
  while t[i] and not (t[i].kind == "op" and t[i].value == "}") do
    local tok = t[i]
    local key, key_line
    if tok.kind == "op" and tok.value == "[" and t[i + 1] and t[i + 2] and t[i + 2].value == "]"
      and t[i + 3] and t[i + 3].value == "=" and t[i + 3].kind == "op" then
      key, key_line = t[i + 1].value, t[i + 1].line
      i = i + 4
    elseif tok.kind == "name" and t[i + 1] and t[i + 1].kind == "op" and t[i + 1].value == "=" then
      key, key_line = tok.value, tok.line
      i = i + 2
    end
    local vtok = t[i]
    if not vtok then break end
    local entry = { line = key_line or vtok.line }
    if vtok.kind == "op" and vtok.value == "{" then
      entry.tree, i = constructor(t, i, depth + 1)
      i = i + 1
    else
      local stop = skip_value(t, i)
      if stop == i + 1 then
        if vtok.kind == "string" then entry.value = vtok.value
        elseif vtok.kind == "number" then entry.value = tonumber(vtok.value)
        elseif vtok.value == "true" or vtok.value == "false" then entry.value = vtok.value == "true" end
      end
      i = stop
    end
    if key ~= nil then tree.keys[key] = entry
    else entry.value = entry.value; tree.items[#tree.items + 1] = entry end
    if t[i] and t[i].kind == "op" and (t[i].value == "," or t[i].value == ";") then i = i + 1 end
  end
  return tree, i
end

local OPENERS = { ["function"] = true, ["if"] = true, ["do"] = true, ["repeat"] = true }
local CLOSERS = { ["end"] = true, ["until"] = true }

-- The top level of one file: settings assigned there (with their constructor tree), functions, local names.
local function outline(t)
  local settings, functions, declared = {}, {}, {}
  local depth, braces = 0, 0
  local stack = {}
  for i, tok in ipairs(t) do
    local v, k = tok.value, tok.kind
    local prev = t[i - 1]
    if k == "keyword" and OPENERS[v] then
      depth = depth + 1
      if v == "function" then
        local j, fname = i + 1, nil
        if t[j] and t[j].kind == "name" then
          fname = t[j].value
          while t[j + 1] and t[j + 1].kind == "op" and (t[j + 1].value == "." or t[j + 1].value == ":") do j = j + 2 end
          j = j + 1
        elseif prev and prev.kind == "op" and prev.value == "=" and t[i - 2] and t[i - 2].kind == "name" then
          fname = t[i - 2].value
        end
        if t[j] and t[j].value == "(" then
          local params = {}
          j = j + 1
          while t[j] and t[j].value ~= ")" do
            if t[j].kind == "name" then params[#params + 1] = t[j].value; declared[t[j].value] = true end
            j = j + 1
          end
          local f = { name = fname, params = params, from = j + 1, line = tok.line, depth = depth,
            top = depth == 1 and braces == 0 }
          functions[#functions + 1] = f
          stack[#stack + 1] = f
        end
      end
    elseif k == "keyword" and CLOSERS[v] then
      local f = stack[#stack]
      if f and f.depth == depth then f.to = i - 1; stack[#stack] = nil end
      depth = depth - 1
    elseif k == "op" and (v == "{" or v == "(" or v == "[") then braces = braces + 1
    elseif k == "op" and (v == "}" or v == ")" or v == "]") then braces = braces - 1
    elseif k == "keyword" and v == "local" then
      local j = i + 1
      if t[j] and t[j].value == "function" then j = j + 1 end
      while t[j] and t[j].kind == "name" do
        declared[t[j].value] = true
        j = j + 1
        if t[j] and t[j].kind == "name" and t[j].value:match("^<") then j = j + 1 end
        if t[j] and t[j].value == "," then j = j + 1 else break end
      end
    elseif k == "keyword" and v == "for" then
      local j = i + 1
      while t[j] and t[j].kind == "name" do
        declared[t[j].value] = true
        j = j + 1
        if t[j] and t[j].value == "," then j = j + 1 else break end
      end
    elseif k == "name" and depth == 0 and braces == 0 and t[i + 1] and t[i + 1].kind == "op"
      and t[i + 1].value == "=" and not (prev and prev.kind == "op" and (prev.value == "." or prev.value == ":")) then
      local s = { line = tok.line }
      if t[i + 2] and t[i + 2].kind == "op" and t[i + 2].value == "{" then s.tree = constructor(t, i + 2) end
      settings[v] = s
    end
  end
  for _, f in ipairs(functions) do f.to = f.to or #t end
  return settings, functions, declared
end

-- Index of the `[` matching the `]` at tokens[j].
local function open_bracket(t, j)
  local depth = 0
  for k = j, math.max(1, j - 200), -1 do  -- bounded: comparisons are short
    if t[k].kind == "op" and t[k].value == "]" then depth = depth + 1
    elseif t[k].kind == "op" and t[k].value == "[" then
      depth = depth - 1
      if depth == 0 then return k end
    end
  end
end

-- The field a comparison operand ends in (`customer.tier`, `line.categories[1]`), before or after a literal.
local function field_before(t, j)
  local tok = t[j]
  if not tok then return nil end
  if tok.kind == "name" and t[j - 1] and t[j - 1].value == "." then return tok.value end
  if tok.kind == "op" and tok.value == "]" then
    local k = open_bracket(t, j)
    if k and t[k - 1] and t[k - 1].kind == "name" then return t[k - 1].value end
  end
end

local function field_after(t, j)
  if not (t[j] and t[j].kind == "name") then return nil end
  local last, i = nil, j + 1
  while t[i] do
    if t[i].value == "." and t[i + 1] and t[i + 1].kind == "name" then last = t[i + 1].value; i = i + 2
    elseif t[i].value == "[" then
      local depth, limit = 0, i + 200
      repeat
        if t[i].value == "[" then depth = depth + 1 elseif t[i].value == "]" then depth = depth - 1 end
        i = i + 1
      until not t[i] or depth == 0 or i > limit
    else break end
  end
  return last
end

local LITERAL_KIND = { tier = "tier", sku = "sku", categories = "category", category = "category" }

-- Checks inside the functions of one file: fields of the rule's arguments, literal tiers/categories/SKUs
-- compared with them, and names that are neither local, a setting of this file, nor a built-in.
local function check_functions(file, t, functions, declared, set_names, report, literal)
  local checked = {}
  for _, f in ipairs(functions) do
    local roles, category_vars = {}, {}
    local spec = f.top and FUNCTION_ROLES[f.name]
    if spec then for n, p in ipairs(f.params) do roles[p] = spec[n] end end
    -- `for _, l in ipairs(cart.lines)` makes l a cart line
    for i = f.from, f.to do
      local tok = t[i]
      if tok.kind == "keyword" and tok.value == "for" and t[i + 1] and t[i + 2] and t[i + 2].value == ","
        and t[i + 3] and t[i + 3].kind == "name" and t[i + 4] and t[i + 4].value == "in" then
        local j = i + 5
        if t[j] and (t[j].value == "ipairs" or t[j].value == "pairs") and t[j + 1] and t[j + 1].value == "(" then
          j = j + 2
        end
        if t[j] and roles[t[j].value] and LINE_OF[roles[t[j].value]] and t[j + 1] and t[j + 1].value == "."
          and t[j + 2] and t[j + 2].value == "lines" then
          roles[t[i + 3].value] = LINE_OF[roles[t[j].value]]
        end
        -- `for _, c in ipairs(line.categories)` makes c a category name
        if t[j] and roles[t[j].value] and FIELD_SET[roles[t[j].value]].categories and t[j + 1]
          and t[j + 1].value == "." and t[j + 2] and t[j + 2].value == "categories" then
          category_vars[t[i + 3].value] = true
        end
      end
    end
    local braces = 0
    for i = f.from, f.to do
      local tok, prev, nxt = t[i], t[i - 1], t[i + 1]
      if tok.kind == "op" and tok.value == "{" then braces = braces + 1
      elseif tok.kind == "op" and tok.value == "}" then braces = braces - 1 end
      local after_dot = prev and prev.kind == "op" and (prev.value == "." or prev.value == ":")
      if tok.kind == "name" and not after_dot and not checked[i] then
        checked[i] = true
        local role = roles[tok.value]
        if role and nxt then
          local field, fline
          if nxt.value == "." and t[i + 2] and t[i + 2].kind == "name" then field, fline = t[i + 2].value, t[i + 2].line
          elseif nxt.value == "[" and t[i + 2] and t[i + 2].kind == "string" and t[i + 3] and t[i + 3].value == "]" then
            field, fline = t[i + 2].value, t[i + 2].line
          end
          if field and not FIELD_SET[role][field] then
            report(format("'%s.%s': %s has no field '%s' (it has %s)", tok.value, field, ROLE_WORDS[role], field,
              concat(FIELDS[role], ", ")) .. hint_text(suggest(field, FIELDS[role]) and
              (tok.value .. "." .. suggest(field, FIELDS[role]))), file, fline)
          elseif field == "lines" and LINE_OF[role] and t[i + 3] and t[i + 3].value == "[" then
            local k, depth = i + 3, 0
            repeat
              if t[k].value == "[" then depth = depth + 1 elseif t[k].value == "]" then depth = depth - 1 end
              k = k + 1
            until not t[k] or depth == 0 or k > i + 200
            if t[k] and t[k].value == "." and t[k + 1] and t[k + 1].kind == "name" then
              local lf = t[k + 1].value
              local lrole = LINE_OF[role]
              if not FIELD_SET[lrole][lf] then
                local h = suggest(lf, FIELDS[lrole])
                report(format("'%s.lines[...].%s': a cart line has no field '%s' (it has %s)", tok.value, lf, lf,
                  concat(FIELDS[lrole], ", ")) .. hint_text(h), file, t[k + 1].line)
              end
            end
          end
        elseif not role and not declared[tok.value] and not set_names[tok.value] and not sandbox.FORBIDDEN[tok.value]
          and not (prev and prev.kind == "keyword" and prev.value == "goto")
          and not (prev and prev.value == "::")
          and not (braces > 0 and nxt and nxt.kind == "op" and nxt.value == "=") then
          local known = false
          for _, b in ipairs(sandbox.BASE_NAMES) do if b == tok.value then known = true break end end
          if not known then
            local all = {}
            for n in pairs(declared) do all[#all + 1] = n end
            for n in pairs(set_names) do all[#all + 1] = n end
            for _, n in ipairs(sandbox.BASE_NAMES) do all[#all + 1] = n end
            for p in pairs(roles) do all[#all + 1] = p end
            table.sort(all)
            if nxt and nxt.kind == "op" and nxt.value == "=" and braces == 0 then
              report(format("'%s' is assigned without 'local' inside %s; rules cannot change names while they run",
                tok.value, f.name and ("function " .. f.name) or "a function"), file, tok.line)
            else
              report(format("unknown name '%s' inside %s (it is not a local, a setting of %s or a built-in)",
                tok.value, f.name and (f.name .. "()") or "a function", file) ..
                hint_text(suggest(tok.value, all)), file, tok.line)
            end
          end
        elseif sandbox.FORBIDDEN[tok.value] and not declared[tok.value] then
          report(format("'%s' is not allowed: %s", tok.value, sandbox.FORBIDDEN[tok.value]), file, tok.line)
        end
      end
      if tok.kind == "string" then
        local field
        if prev and prev.kind == "op" and (prev.value == "==" or prev.value == "~=") then
          field = field_before(t, i - 2)
          if not field and t[i - 2] and t[i - 2].kind == "name" and category_vars[t[i - 2].value]
            and not (t[i - 3] and t[i - 3].value == ".") then field = "category" end
        elseif nxt and nxt.kind == "op" and (nxt.value == "==" or nxt.value == "~=") then
          field = field_after(t, i + 2)
          if not field and t[i + 2] and t[i + 2].kind == "name" and category_vars[t[i + 2].value] then
            field = "category"
          end
        end
        if field and LITERAL_KIND[field] then literal(LITERAL_KIND[field], tok.value, file, tok.line) end
      end
    end
  end
end

-- Where a key or list item of a setting is written: the line in the constructor, else the setting's line.
local function where(outlines, file, setting, key, item)
  local s = outlines[file] and outlines[file][setting]
  if not s then return nil end
  if s.tree then
    if key ~= nil and s.tree.keys[key] then return s.tree.keys[key].line end
    if item ~= nil then
      for _, it in ipairs(s.tree.items) do if it.value == item then return it.line end end
    end
  end
  return s.line
end

local function nested_where(outlines, file, setting, key, sub)
  local s = outlines[file] and outlines[file][setting]
  local k = s and s.tree and s.tree.keys[key]
  if k and k.tree and k.tree.keys[sub] then return k.tree.keys[sub].line end
  return where(outlines, file, setting, key)
end

-- line_of(file, setting [, key [, sub]]): where a setting, one of its keys (or list items) or a key inside a
-- key's table is written in the rule sources { [file] = src }; nil when unknown.
function _M.locator(sources)
  local souts = {}
  for file, src in pairs(sources) do souts[file] = (outline(lexer.tokens(src))) end
  return function(file, setting, key, sub)
    if sub ~= nil then return nested_where(souts, file, setting, key, sub) end
    local s = souts[file] and souts[file][setting]
    if key ~= nil and s and s.tree and (type(key) ~= "string" or not s.tree.keys[key]) then
      return where(souts, file, setting, nil, key)
    end
    return where(souts, file, setting, key)
  end
end

-- The line of the entry that makes a table setting wrong: each key (or list item, or a tier's own key) is
-- checked alone with check(name, value); the first that fails alone is where the mistake is written.
function _M.value_line(src, name, value, check)
  if type(value) ~= "table" or type(src) ~= "string" then return nil end
  local line_of = _M.locator({ f = src })
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local v = value[k]
    local single = type(k) == "number" and { v } or { [k] = v }
    if check(name, single) then
      if type(k) == "number" then return line_of("f", name, v) end
      if type(v) == "table" then
        for sub, x in pairs(v) do
          if check(name, { [k] = { [sub] = x } }) then return line_of("f", name, k, sub) end
        end
      end
      return line_of("f", name, k)
    end
  end
end

-- The settings that name tiers, categories and SKUs, in the order they are checked:
-- { file, setting, kind, keyed (the names are the table's keys, else its values),
--   only with a store category list (categories.lua's own names define the list otherwise) }.
local NAMING = {
  { "earn.lua", "tier_multipliers", "tier", true },
  { "earn.lua", "exclude_categories", "category" },
  { "earn.lua", "category_multipliers", "category", true },
  { "earn.lua", "exclude_skus", "sku" },
  { "earn.lua", "sku_multipliers", "sku", true },
  { "redemption.lua", "tiers", "tier", true },
  { "redemption.lua", "refuse_categories", "category" },
  { "redemption.lua", "refuse_skus", "sku" },
  { "categories.lua", "attributes", "category", true, true },
  { "categories.lua", "precedence", "category", false, true },
  { "categories.lua", "sku_attributes", "sku", true },
}

local function sorted_keys(t)
  local out = {}
  for k in pairs(t or {}) do if type(k) == "string" then out[#out + 1] = k end end
  table.sort(out)
  return out
end

local function list_of(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--[[ Checks a loaded rule set's names. args: sources {[file]=src}, settings {[file]=values}, lines
{[file]={[setting]=line}}, categories (store list or nil), tiers (list or nil), skus (list or nil),
fixture_names { tiers = {{name, file, line}}, categories = {...}, skus = {...} } (from fixtures).
Returns a list of { problem, file, line, hint } (hint: "(did you mean 'x'?)" or nil). ]]
function _M.check(args)
  local out, seen = {}, {}
  local function report(problem, file, line)
    local key = problem .. "\0" .. tostring(file) .. "\0" .. tostring(line)
    if seen[key] then return end
    seen[key] = true
    -- "did you mean" goes after the place, as in every other rules message
    local body, hint = problem:match("^(.-) (%(did you mean '[^']*'%?%))$")
    out[#out + 1] = { problem = body or problem, hint = hint, file = file, line = line }
  end
  local outlines = {}
  local tokens = {}
  for file, src in pairs(args.sources) do
    tokens[file] = lexer.tokens(src)
    outlines[file] = { outline(tokens[file]) }
  end
  local settings = args.settings
  local souts = {}
  for file, o in pairs(outlines) do souts[file] = o[1] end

  -- What exists. Tiers: the program's list (program.lua `tier_names`, or the caller's) in capitals.
  local declared_tiers = args.tiers or (settings["program.lua"] and settings["program.lua"].tier_names)
  local tier_set, tier_list
  if declared_tiers then
    tier_list = {}
    for _, n in ipairs(declared_tiers) do tier_list[#tier_list + 1] = _M.tier(n) end
    tier_set = vocab.set_of(tier_list)
  end
  local cat_list, cat_source = args.categories, "the store's category list"
  local c = settings["categories.lua"]
  if not cat_list and c then
    cat_source = "categories.lua"
    local set = {}
    for _, k in ipairs(sorted_keys(c.attributes)) do set[k] = true end
    for _, k in ipairs(c.precedence or {}) do set[k] = true end
    cat_list = list_of(set)
  end
  local cat_set = cat_list and vocab.set_of(cat_list)
  local sku_list = args.skus
  local sku_set = sku_list and vocab.set_of(sku_list)

  -- Every mention, to be resolved: { kind, name, file, line, setting }
  local mentions = {}
  local function mention(kind, name, file, line, setting)
    mentions[#mentions + 1] = { kind = kind, name = name, file = file, line = line, setting = setting }
  end
  for _, n in ipairs(NAMING) do
    local file, setting, kind, keyed, only_with_categories = n[1], n[2], n[3], n[4], n[5]
    local t = settings[file] and settings[file][setting]
    if t ~= nil and (args.categories or not only_with_categories) then
      if keyed then
        for _, k in ipairs(sorted_keys(t)) do mention(kind, k, file, where(souts, file, setting, k), setting) end
      else
        for _, v in ipairs(t) do mention(kind, v, file, where(souts, file, setting, nil, v), setting) end
      end
    end
  end
  for _, m in ipairs(args.fixture_names or {}) do mention(m.kind, m.name, m.file, m.line, m.setting) end

  for file, tk in pairs(tokens) do
    local set_names = {}
    for k in pairs(settings[file] or {}) do set_names[k] = true end
    check_functions(file, tk, outlines[file][2], outlines[file][3], set_names, report,
      function(kind, value, f, line) mention(kind, value, f, line, "a comparison") end)
  end

  -- Without a declared list, a tier written once and close to another written tier is a typo.
  local tier_counts, all_tiers = {}, {}
  for _, m in ipairs(mentions) do
    if m.kind == "tier" and type(m.name) == "string" then
      local up = _M.tier(m.name)
      if not tier_counts[up] then all_tiers[#all_tiers + 1] = up end
      tier_counts[up] = (tier_counts[up] or 0) + 1
    end
    if m.kind == "sku" and not sku_set and type(m.name) == "string" then
      tier_counts["sku:" .. m.name] = (tier_counts["sku:" .. m.name] or 0) + 1
    end
  end
  local all_skus = {}
  for _, m in ipairs(mentions) do
    if m.kind == "sku" and type(m.name) == "string" and not all_skus[m.name] then
      all_skus[m.name] = true
      all_skus[#all_skus + 1] = m.name
    end
  end
  table.sort(all_tiers)
  table.sort(all_skus)

  local function where_words(m) return m.setting and (" (in " .. m.setting .. ")") or "" end
  for _, m in ipairs(mentions) do
    local name = m.name
    if type(name) ~= "string" then name = tostring(name) end
    if m.kind == "tier" then
      local up = _M.tier(name)
      if up ~= name then
        report(format("tier '%s'%s is not in capitals: the store upper-cases the CRM's tier names, so it is " ..
          "compared as '%s'; write '%s'", name, where_words(m), up, up), m.file, m.line)
      end
      if tier_set and not tier_set[up] then
        report(format("unknown tier '%s'%s: the program's tiers are %s", name, where_words(m), concat(tier_list, ", "))
          .. hint_text(suggest(up, tier_list)), m.file, m.line)
      elseif not tier_set and tier_counts[up] == 1 then
        local others = {}
        for _, t in ipairs(all_tiers) do if t ~= up then others[#others + 1] = t end end
        local h = suggest(up, others)
        if h then
          report(format("unknown tier '%s'%s: no other rule or fixture names it", name, where_words(m)) .. hint_text(h),
            m.file, m.line)
        end
      end
    elseif m.kind == "category" and cat_set and not cat_set[name] then
      -- categories.lua lists the categories with attributes, not the whole catalog: there only near-misses count
      local h = suggest(name, cat_list)
      if args.categories or h then
        report(format("unknown category '%s'%s: it is not in %s", name, where_words(m), cat_source) .. hint_text(h),
          m.file, m.line)
      end
    elseif m.kind == "sku" then
      if sku_set and not sku_set[name] then
        report(format("unknown SKU '%s'%s: it is not in the store's SKU list", name, where_words(m)) ..
          hint_text(suggest(name, sku_list)), m.file, m.line)
      elseif not sku_set and tier_counts["sku:" .. name] == 1 and m.setting ~= "a fixture" then
        local others = {}
        for _, s in ipairs(all_skus) do if s ~= name then others[#others + 1] = s end end
        local h = suggest(name, others)
        if h then
          report(format("unknown SKU '%s'%s: no other rule or fixture names it", name, where_words(m)) .. hint_text(h),
            m.file, m.line)
        end
      end
    end
  end
  if c and c.precedence and not args.categories then
    local attrs = c.attributes or {}
    for _, n in ipairs(c.precedence) do
      if attrs[n] == nil then
        report(format("'%s' (in precedence) has no attributes in categories.lua", n) ..
          hint_text(suggest(n, sorted_keys(attrs))), "categories.lua",
          where(souts, "categories.lua", "precedence", nil, n))
      end
    end
  end
  table.sort(out, function(a, b)
    if (a.file or "") ~= (b.file or "") then return (a.file or "") < (b.file or "") end
    if (a.line or 0) ~= (b.line or 0) then return (a.line or 0) < (b.line or 0) end
    return a.problem < b.problem
  end)
  return out
end

-- Tiers, categories and SKUs the fixtures use, with where each is written: { {kind, name, file, line} }; and
-- the fixtures that cannot be read (strict keys, JSON mistakes): { {problem, file} }.
function _M.fixture_mentions(dir, limits)
  local fixtures = require("loyalty.rules.fixtures")
  local util = require("loyalty.util")
  local out, unreadable = {}, {}
  for _, file in ipairs(fixtures.list(dir)) do
    local path = dir .. "/fixtures/" .. file
    local ok, fx, ferr = pcall(fixtures.read, path, file, limits)
    local src = util.read_file(path) or ""
    if ok and fx == nil then
      -- the message already names the place: only the folder is added
      for msg in tostring(ferr):gmatch("[^\n]+") do
        local plain = file:gsub("%p", "%%%0")
        msg = msg:gsub(" in " .. plain, " in fixtures/" .. file):gsub("^" .. plain, "fixtures/" .. file)
        unreadable[#unreadable + 1] = { problem = msg,
          file = "fixtures/" .. file, located = true }
      end
    end
    if ok and type(fx) == "table" then
      local is_json = file:match("%.json$") ~= nil
      local toks = not is_json and lexer.tokens(src) or nil
      local function line_of(name)
        if toks then
          for _, tok in ipairs(toks) do if tok.kind == "string" and tok.value == name then return tok.line end end
          return nil
        end
        local at = src:find('"' .. name .. '"', 1, true)
        return at and (lexer.position(src, at))
      end
      local function add(kind, name)
        if type(name) == "string" then
          out[#out + 1] = { kind = kind, name = name, file = "fixtures/" .. file, line = line_of(name),
            setting = "a fixture" }
        end
      end
      if type(fx.customer) == "table" then add("tier", fx.customer.tier) end
      if type(fx.cart.lines) == "table" then
        for _, l in ipairs(fx.cart.lines) do
          if type(l) == "table" then
            add("sku", l.sku)
            local cats = l.categories or l.category
            if type(cats) == "table" then for _, n in ipairs(cats) do add("category", n) end
            else add("category", cats) end
          end
        end
      end
    end
  end
  return out, unreadable
end

-- A syntax error is reported by Lua at the token after the mistake, which can be lines later (`max_share = 50%`
-- followed by comments and the next setting). When the token before it ends an earlier line with an operator
-- that needs a right-hand side, that earlier line holds the mistake.
local DANGLING = { ["%"] = true, ["+"] = true, ["-"] = true, ["*"] = true, ["/"] = true, ["//"] = true,
  ["^"] = true, [".."] = true, ["="] = true, ["=="] = true, ["<"] = true, [">"] = true, ["<="] = true,
  [">="] = true, ["~="] = true, [","] = true }
function _M.blame_line(src, line, message)
  if type(src) ~= "string" or type(line) ~= "number" then return line, message end
  local near = type(message) == "string" and message:match("near '([^']*)'")
  local t = lexer.tokens(src)
  for i, tok in ipairs(t) do
    if tok.line == line and (near == nil or tok.value == near or near == "<eof>") then
      -- back to the first token of the reported line: the expression may have swallowed its first words
      local j = i - 1
      while t[j] and t[j].line == line do j = j - 1 end
      local prev = t[j]
      if prev and prev.line < line and prev.kind == "op" and DANGLING[prev.value] then
        local extra = ""
        local before = t[j - 1]
        if prev.value == "%" and before and before.kind == "number" then
          extra = format(" ('%s%%': write a share as a fraction, %s for %s%%)", before.value,
            tostring(tonumber(before.value) / 100), before.value)
        end
        return prev.line, format("'%s' at the end of the line needs something after it%s", prev.value, extra)
      end
      break
    end
  end
  return line, message
end

return _M

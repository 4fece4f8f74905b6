-- A small Lua tokenizer for the rule checker: names, strings, numbers and operators with their lines.
-- It only has to be right for reporting (names and positions); the compiler stays the judge of syntax.
local _M = {}

local find, sub, match = string.find, string.sub, string.match

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or repeat return then
  true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local OPS3 = { ["..."] = true }
local OPS2 = { ["=="] = true, ["~="] = true, ["<="] = true, [">="] = true, [".."] = true, ["::"] = true,
  ["//"] = true, ["<<"] = true, [">>"] = true }

local ESCAPES = { n = "\n", t = "\t", r = "\r", a = "\a", b = "\b", f = "\f", v = "\v", ["\\"] = "\\",
  ['"'] = '"', ["'"] = "'", ["\n"] = "\n" }

-- Tokens of src: { {kind = "name"|"keyword"|"string"|"number"|"op", value, line, col}, ... }.
-- Never raises: text it cannot follow (an unfinished string) ends the list, with `incomplete` set.
function _M.tokens(src)
  local out, pos, n, line, line_start = {}, 1, #src, 1, 1
  local function newlines(from, to)
    local p = from
    while true do
      local nl = find(src, "\n", p, true)
      if not nl or nl > to then break end
      line, line_start = line + 1, nl + 1
      p = nl + 1
    end
  end
  local function add(kind, value, at, l, c)
    out[#out + 1] = { kind = kind, value = value, line = l, col = c, pos = at }
  end
  while pos <= n do
    local s, e = find(src, "^[ \t\r\f\v]+", pos)
    if s then pos = e + 1 end
    if pos > n then break end
    local c = sub(src, pos, pos)
    local l, col = line, pos - line_start + 1
    if c == "\n" then
      line, line_start = line + 1, pos + 1
      pos = pos + 1
    elseif c == "-" and sub(src, pos + 1, pos + 1) == "-" then
      local eq = match(src, "^%[(=*)%[", pos + 2)
      if eq then
        local _, close = find(src, "]" .. eq .. "]", pos + 2, true)
        close = close or n
        newlines(pos, close)
        pos = close + 1
      else
        local nl = find(src, "\n", pos, true)
        pos = nl or n + 1
      end
    elseif c == "[" and match(src, "^%[=*%[", pos) then
      local eq = match(src, "^%[(=*)%[", pos)
      local open_end = pos + #eq + 2
      local close_s, close = find(src, "]" .. eq .. "]", open_end, true)
      if not close then out.incomplete = true break end
      local text = sub(src, open_end, close_s - 1):gsub("^\r?\n", "")
      add("string", text, pos, l, col)
      newlines(pos, close)
      pos = close + 1
    elseif c == '"' or c == "'" then
      local i, parts = pos + 1, {}
      while true do
        local ch = sub(src, i, i)
        if ch == "" or ch == "\n" then out.incomplete = true return out end
        if ch == c then break end
        if ch == "\\" then
          local nx = sub(src, i + 1, i + 1)
          if ESCAPES[nx] then parts[#parts + 1] = ESCAPES[nx]; i = i + 2
          elseif match(nx, "%d") then
            local digits = match(src, "^%d%d?%d?", i + 1)
            parts[#parts + 1] = string.char(tonumber(digits) % 256)
            i = i + 1 + #digits
          else parts[#parts + 1] = nx; i = i + 2 end
        else
          parts[#parts + 1] = ch
          i = i + 1
        end
      end
      add("string", table.concat(parts), pos, l, col)
      pos = i + 1
    elseif match(c, "[%a_\128-\255]") then
      local word = match(src, "^[%w_\128-\255]+", pos)
      add(KEYWORDS[word] and "keyword" or "name", word, pos, l, col)
      pos = pos + #word
    elseif match(src, "^%.?%d", pos) then
      local num = match(src, "^0[xX][%x%.]*[pP][%+%-]?%d+", pos) or match(src, "^0[xX][%x%.]+", pos)
        or match(src, "^%d*%.?%d*[eE][%+%-]?%d+", pos) or match(src, "^%d*%.?%d*", pos)
      add("number", num, pos, l, col)
      pos = pos + #num
    else
      local three, two = sub(src, pos, pos + 2), sub(src, pos, pos + 1)
      local op = OPS3[three] and three or OPS2[two] and two or c
      add("op", op, pos, l, col)
      pos = pos + #op
    end
  end
  return out
end

-- Line and column of byte offset `at` (1-based) in text.
function _M.position(text, at)
  local line, last = 1, 0
  local p = 1
  while true do
    local nl = find(text, "\n", p, true)
    if not nl or nl >= at then break end
    line, last, p = line + 1, nl, nl + 1
  end
  return line, at - last
end

return _M

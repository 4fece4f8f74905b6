-- Where lua-loyalty's own files are: a checkout (`<root>/lua/loyalty/`) or a LuaRocks tree
-- (`<tree>/share/lua/<ver>/loyalty/`). Examples, rules and seeds are installed in each rock's own
-- directory (`<tree>/lib/luarocks/rocks-<ver>/<rock>/<version>/`), outside package.path.
local _M = {}

-- LuaFileSystem only when a path is asked for: `require "loyalty"` reads VERSION from here.
local function lfs() return require "lfs" end

_M.VERSION = "0.1.0"

local function here()
  local src = debug.getinfo(1, "S").source
  local file = src:match("^@(.*)$")
  if not file then return nil end
  if file:sub(1, 1) ~= "/" then file = lfs().currentdir() .. "/" .. file end
  -- "a/./b" and "a//b" from relative package paths
  file = file:gsub("/%./", "/"):gsub("//+", "/")
  return file
end

local function is_dir(p) return lfs().attributes(p, "mode") == "directory" end

--- The checkout's root directory when running from a checkout, else nil.
function _M.checkout_root()
  local f = here()
  return f and f:match("^(.*)/lua/loyalty/paths%.lua$") or nil
end

--- tree, lua_version ("5.4", "5.1") when this module is installed in a LuaRocks tree, else nil.
function _M.tree()
  local f = here()
  if not f then return nil end
  local tree, ver = f:match("^(.*)/share/lua/(%d%.%d)/loyalty/paths%.lua$")
  return tree, ver
end

--- The installed directory of rock `name` in this module's tree (the version matching ours first),
-- or nil.
function _M.rock_dir(name)
  local tree, ver = _M.tree()
  if not tree then return nil end
  local base = tree .. "/lib/luarocks/rocks-" .. ver .. "/" .. name
  if not is_dir(base) then return nil end
  local found
  for v in lfs().dir(base) do
    if v ~= "." and v ~= ".." and is_dir(base .. "/" .. v) then
      if v:sub(1, #_M.VERSION + 1) == _M.VERSION .. "-" then return base .. "/" .. v end
      found = found or (base .. "/" .. v)
    end
  end
  return found
end

--- Where rock `name`'s data lives: the checkout root, or the rock's installed directory.
function _M.data_dir(name)
  return _M.checkout_root() or _M.rock_dir(name)
end

--- The path of `rel` (e.g. "examples/rules") shipped with rock `name`, or nil, message.
function _M.find(name, rel)
  local dir = _M.data_dir(name)
  if not dir then
    return nil, rel .. " is shipped with the " .. name .. " rock, which is not installed in this tree"
      .. " (luarocks install " .. name .. ")"
  end
  local p = dir .. "/" .. rel
  if not lfs().attributes(p) then
    return nil, p .. " is missing: reinstall the " .. name .. " rock (luarocks install " .. name .. ")"
  end
  return p
end

return _M

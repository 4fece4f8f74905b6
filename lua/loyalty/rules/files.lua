-- Folders for rule sets: listing, stat-ing, making and removing them through LuaFileSystem (a
-- declared dependency: no process is ever started to list a folder). Whole files: loyalty.util.
local _M = {}

-- lfs 1.8 on Lua 5.1/LuaJIT also sets the global `lfs` when loaded; inside an nginx request that
-- write trips the global-write guard (a warning and a traceback per worker). Load it with the
-- guard's __newindex lifted for that one moment and leave no global behind.
local function load_lfs()
  local loaded = package.loaded.lfs
  if loaded then return loaded end
  local had = rawget(_G, "lfs")
  local mt = getmetatable(_G)
  local guard = type(mt) == "table" and rawget(mt, "__newindex") or nil
  if guard then rawset(mt, "__newindex", nil) end
  local ok, mod = pcall(require, "lfs")
  if guard then rawset(mt, "__newindex", guard) end
  if had == nil then rawset(_G, "lfs", nil) end
  if not ok then
    error("loyalty.rules needs LuaFileSystem (Debian: lua-filesystem; LuaRocks: luafilesystem): " .. tostring(mod), 0)
  end
  return mod
end
local lfs = load_lfs()
_M.lfs = lfs

-- Sorted names of regular files in dir ending in one of `suffixes`; {} when dir does not exist.
function _M.list(dir, suffixes)
  local names = {}
  if lfs.attributes(dir, "mode") ~= "directory" then return names end
  local ok, iter, state = pcall(lfs.dir, dir)
  if not ok then return names end
  for name in iter, state do
    if name:sub(1, 1) ~= "." then
      for _, s in ipairs(suffixes) do
        if name:sub(-#s) == s then
          if lfs.attributes(dir .. "/" .. name, "mode") == "file" then names[#names + 1] = name end
          break
        end
      end
    end
  end
  table.sort(names)
  return names
end

--- Fills `into` (a reused table) with path's stat fields; returns into, or nil when absent.
function _M.stat(path, into)
  return lfs.attributes(path, into)
end

--- Makes a directory and its missing parents; returns true or nil, message.
function _M.mkdir_p(path)
  if lfs.attributes(path, "mode") == "directory" then return true end
  local parent = path:match("^(.+)/[^/]+/*$")
  if parent and lfs.attributes(parent, "mode") == nil then
    local ok, err = _M.mkdir_p(parent)
    if not ok then return nil, err end
  end
  local ok, err = lfs.mkdir(path)
  if not ok and lfs.attributes(path, "mode") ~= "directory" then return nil, path .. ": " .. tostring(err) end
  return true
end

--- Removes a directory tree (files and folders below it), best effort.
function _M.remove_tree(path)
  if lfs.attributes(path, "mode") == "directory" then
    for name in lfs.dir(path) do
      if name ~= "." and name ~= ".." then _M.remove_tree(path .. "/" .. name) end
    end
    lfs.rmdir(path)
  else
    os.remove(path)
  end
end

return _M

-- File access for rule sets: reading whole files and listing the fixtures folder.
local _M = {}

-- A whole file, or nil and io.open's message.
function _M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data = f:read("*a")
  f:close()
  return data
end

local lfs = require "lfs" -- LuaFileSystem: a declared dependency (Debian: lua-filesystem)

-- Sorted names of regular files in dir ending in one of `suffixes`; {} when dir does not exist.
function _M.list(dir, suffixes)
  local names = {}
  local function keep(name)
    for _, s in ipairs(suffixes) do
      if name:sub(-#s) == s and name:sub(1, 1) ~= "." then names[#names + 1] = name return end
    end
  end
  if lfs.attributes(dir, "mode") ~= "directory" then return names end
  for name in lfs.dir(dir) do
    if lfs.attributes(dir .. "/" .. name, "mode") == "file" then keep(name) end
  end
  table.sort(names)
  return names
end

return _M

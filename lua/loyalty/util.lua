-- Small helpers that several modules would otherwise each write again: single-line text
-- checks, whole-file reads and writes, plain-text replacement, retry backoff. Pure Lua; no
-- module of the project is loaded until a helper needs it.
local _M = {}

--- True when v is a non-empty string of at most max bytes without NUL, CR or LF: a value that
-- goes into one header, log line or key.
function _M.single_line(v, max)
  return type(v) == "string" and v ~= "" and #v <= max and not v:find("[%z\r\n]")
end

--- s as one line: NUL, CR and LF become spaces, then cut to max bytes.
function _M.one_line(s, max)
  return (tostring(s):gsub("[%z\r\n]", " "):sub(1, max))
end

--- The text of an error for a sentence of one's own: err.message of an error table, else
-- tostring(err) (tostring of a loyalty.errors table adds "loyalty: <kind> error: ").
function _M.message_of(err)
  if type(err) == "table" and err.message ~= nil then return tostring(err.message) end
  return tostring(err)
end

--- A whole file's bytes, or nil and io.open's message.
function _M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data = f:read("*a")
  f:close()
  return data
end

--- Writes data to path (replacing it): true, or nil and a message.
function _M.write_file(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(data)
  local closed, cerr = f:close()
  if not (ok and closed) then return nil, tostring(werr or cerr) end
  return true
end

--- A name no other process or nginx worker picks at the same moment (for temporary files).
function _M.unique_name()
  local pid = require("loyalty.env").worker_pid() or ""
  return pid .. "-" .. os.time() .. "-" .. math.random(1, 1e9) .. "-" .. (tostring({}):match("0x(%x+)") or "")
end

--- Writes data to path atomically (a temporary file in the same directory, then rename): a
-- reader sees the old file or the new one, never half of it. true, or nil and a message.
function _M.write_atomic(path, data)
  local tmp = path .. ".tmp-" .. _M.unique_name()
  local ok, err = _M.write_file(tmp, data)
  if not ok then
    os.remove(tmp)
    return nil, err
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

--- s with every occurrence of needle (plain text, never a pattern: a password ending in "%"
-- must not raise, one with "(" must still be found) replaced by with. Linear, never loops.
function _M.replace_plain(s, needle, with)
  local a, b = s:find(needle, 1, true)
  if not a then return s end
  local parts, from = {}, 1
  while a do
    parts[#parts + 1] = s:sub(from, a - 1)
    parts[#parts + 1] = with
    from = b + 1
    a, b = s:find(needle, from, true)
  end
  parts[#parts + 1] = s:sub(from)
  return table.concat(parts)
end

--- Seconds to wait before retry number `attempt` (1 = the first retry): exponential from base,
-- capped at max, with half of it jittered (random() in [0, 1)); a longer retry_after from the
-- server wins, capped at retry_after_max (default max).
function _M.backoff(attempt, base, max, random, retry_after, retry_after_max)
  local d = math.min(max, base * 2 ^ math.max(0, attempt - 1))
  d = d / 2 + random() * d / 2
  if retry_after and retry_after > d then d = math.min(retry_after, retry_after_max or max) end
  return d
end

return _M

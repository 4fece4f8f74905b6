-- Injected faults: `POST /sandbox/faults` registers specs; each matching request (path prefix and
-- optional method) takes one from the spec's count until it is used up. `apply_drop` runs the
-- request as usual (the write is booked) and then closes the connection without a reply: a lost
-- reply, as a timeout after the CRM applied the write would be. `ignore_args` handles the request
-- as if the query arguments it names (`args = {"offset"}`) were not sent: a CRM that pages otherwise.
local json = require("loyalty.sandbox.json")
local store = require("loyalty.sandbox.store")

local _M = {}

local ACTIONS = { status = true, delay = true, malformed = true, truncated = true, drop = true, empty = true,
  body_failure = true, body = true, apply_drop = true, ignore_args = true }

--- Validates and stores one spec. Returns the stored spec or nil, message.
function _M.add(spec)
  if type(spec) ~= "table" then return nil, "fault spec must be an object" end
  local action = spec.action or (spec.status and "status")
  if not ACTIONS[action or ""] then return nil, "unknown fault action: " .. tostring(action) end
  if action == "status" and (type(spec.status) ~= "number" or spec.status < 100 or spec.status > 599) then
    return nil, "status fault needs a numeric status"
  end
  if action == "delay" and (type(spec.ms) ~= "number" or spec.ms < 0) then return nil, "delay needs ms" end
  if action == "body" and type(spec.body) ~= "string" then return nil, "body fault needs the body text" end
  if action == "ignore_args" then
    if type(spec.args) ~= "table" or #spec.args == 0 then return nil, "ignore_args needs args (a list of names)" end
    for _, a in ipairs(spec.args) do
      if type(a) ~= "string" then return nil, "ignore_args: args are query argument names" end
    end
  end
  local count = spec.count or 1
  if type(count) ~= "number" or count < 1 then return nil, "count must be >= 1" end
  local n = store.next_seq("fault")
  local stored = {
    id = n, match = spec.match or "/", method = spec.method and tostring(spec.method):upper(),
    count = count, action = action, status = spec.status, ms = spec.ms, retry_after = spec.retry_after,
    code = spec.code, message = spec.message, body = spec.body, args = spec.args,
  }
  store.set_json("fault:" .. n, stored)
  store.set("fault:" .. n .. ":left", count)
  return stored
end

function _M.clear()
  for n = 1, store.seq("fault") do
    store.delete("fault:" .. n)
    store.delete("fault:" .. n .. ":left")
  end
end

function _M.list()
  local out = json.array {}
  for n = 1, store.seq("fault") do
    local f = store.get_json("fault:" .. n)
    if f then
      f.left = math.max(store.get("fault:" .. n .. ":left") or 0, 0)
      out[#out + 1] = f
    end
  end
  return out
end

--- The fault to apply to this request, or nil. Consumes one use of it.
function _M.take(path, method)
  local n = store.seq("fault")
  if n == 0 then return nil end
  for i = 1, n do
    local left = store.get("fault:" .. i .. ":left")
    if left and left > 0 then
      local f = store.get_json("fault:" .. i)
      if f and path:sub(1, #f.match) == f.match and (not f.method or f.method == method) then
        local now_left = store.incr("fault:" .. i .. ":left", -1)
        if now_left and now_left >= 0 then return f end
      end
    end
  end
  return nil
end

return _M

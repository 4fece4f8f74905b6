-- A scripted transport for client specs: records every request, answers from a queue.
local _M = {}

local Fake = {}
Fake.__index = Fake

--- replies: array of {status=, headers=, body=} or {err={kind=, message=}}; or a function(req) -> reply.
function _M.new(replies)
  return setmetatable({ replies = replies or {}, requests = {}, closed = 0 }, Fake)
end

function Fake:push(reply)
  self.replies[#self.replies + 1] = reply
end

function Fake:send(req)
  self.requests[#self.requests + 1] = req
  local r
  if type(self.replies) == "function" then
    r = self.replies(req)
  else
    r = table.remove(self.replies, 1)
  end
  assert(r, "fake transport: no scripted reply for " .. req.method .. " " .. req.url)
  if r.err then return nil, r.err end
  return { status = r.status or 200, headers = r.headers or {}, body = r.body or "" }
end

function Fake:close()
  self.closed = self.closed + 1
end

--- The value of header `name` (case-insensitive) in a built request.
function _M.header(req, name)
  name = name:lower()
  for _, line in ipairs(req.headers) do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k and k:lower() == name then return v end
  end
end

return _M

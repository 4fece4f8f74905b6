-- The cosocket transport's own work per call, without nginx: loyalty.client -> loyalty.ngx.socket
-- -> core.http_reply -> core.decode_reply -> the Capillary reading, over a stand-in ngx.socket
-- that answers the sandbox-shaped customer/get reply at once. A steady, single-process loop for
-- counting instructions (valgrind --tool=callgrind luajit bench/socket_loop.lua 20000) while
-- cutting the per-call work; bench/nginx.lua measures the real thing.
--   luajit bench/socket_loop.lua [calls]   (from the checkout root)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (jit and "build/5.1/?.so;" or "build/5.4/?.so;") .. package.cpath

local body = '{"response":{"customers":{"customer":[{"custom_fields":{"field":[{"name":"FavoriteColor",' ..
  '"value":"Green"}]},"extended_fields":{"field":[{"name":"gender","value":"Male"}]},"transactions":' ..
  '{"transaction":[]},"current_slab":"silver","registered_store":{"code":"store.one","name":' ..
  '"Sandbox Store One"},"fraud_details":{"modified_on":"","status":"NONE","marked_by":""},"type":"LOYALTY",' ..
  '"mobile":"919999000001","email":"tom@example.com","firstname":"Tom","lastname":"Sawyer","identifiers":[],' ..
  '"source":"instore","trackers":[],"tier_expiry_date":"2119-09-20 23:59:59","item_status":{"code":"1000",' ..
  '"success":"true","warnings":{"warning":[]},"message":"Customer successfully retrieved"},"registered_on":' ..
  '"2019-05-01 10:00:00","updated_on":"2019-05-01 10:00:00","registered_till":{"code":"store.server","name":' ..
  '"store.server"},"loyalty_points":2000,"lifetime_points":2500,"lifetime_purchases":25000,' ..
  '"current_nps_status":[],"registered_by":"store.server","notes":[],"coupons":{"coupon":[{"code":"SAVE10TOM",' ..
  '"valid_till":"2099-12-31","description":"10 off for Tom","series_code":"SERIES-ABS10"}]},' ..
  '"external_id":"TOM001"}]},"status":{"code":200,"total":"1","success":"true","success_count":"1",' ..
  '"message":"Success"}}}'
local reply = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 08:42:44 GMT\r\n" ..
              "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n" ..
              "Connection: keep-alive\r\n\r\n" .. body

-- The stand-in: what the transport calls on ngx.socket.tcp objects, answering at once.
local Sock = {}
Sock.__index = Sock
function Sock.settimeouts() end
function Sock.connect() return 1 end
function Sock.getreusedtimes() return 1 end
function Sock.send(_, data)
  local n = 0
  if type(data) == "table" then
    for i = 1, #data do n = n + #data[i] end
  else
    n = #data
  end
  return n
end
function Sock.receiveany() return reply end
function Sock.receive() return nil, "closed" end
function Sock.setkeepalive() return 1 end
function Sock.close() return 1 end
local sock = setmetatable({}, Sock)
local clock = os.clock
-- luacheck: globals ngx
ngx = { socket = { tcp = function() return sock end }, now = clock, get_phase = function() return "content" end,
        log = function() end, WARN = 5, ERR = 4, INFO = 7, DEBUG = 8, NOTICE = 6, worker = { pid = function()
        return 1 end }, sleep = function() end, shared = {} }

local client = assert(require("loyalty.client").new {
  base_url = "http://127.0.0.1:8080", username = "store.server", password = "server123", timeout_ms = 10000,
})
local N = tonumber(arg and arg[1]) or 200000
local function one()
  local r = client:customer_get { mobile = "919999000001" }
  if not r or not r.customer then error("customer_get failed") end
end
for _ = 1, 2000 do one() end
local t0 = clock()
for _ = 1, N do one() end
print(string.format("socket transport, customer/get over a stand-in socket (%s): %.2f us per call",
                    jit and jit.version or _VERSION, (clock() - t0) / N * 1e6))

-- CRM.COM's outbox replay policy: none yet. The program refuses the outbox setting on CRM.COM
-- (storefront.check_settings), so no entry is ever queued for it; a drainer handed one says so.
local _M = {}

_M.kinds = {}

return _M

-- The drainer: replays due outbox entries against the CRM. A claim hands out at most one entry
-- per customer and leases it, so one customer's writes go one at a time and in order (the CRM
-- may refuse concurrent writes for a customer). Failures back off exponentially with jitter;
-- after max_attempts, or at once for a refusal that no retry can change, an entry becomes a dead
-- letter with its last error. Replays are idempotent where the CRM allows it: the provider's
-- replay policy (loyalty.providers: `replay`) names, per entry kind, the request to replay, the
-- refusals that mean "already delivered", and a lookup a write without a key at the CRM needs
-- before it is sent again.
local outbox = require "loyalty.outbox"
local errors = require "loyalty.errors"
local env = require "loyalty.env"
local util = require "loyalty.util"
local schema = require "loyalty.schema"
local providers = require "loyalty.providers"

local _M = {}

-- Kinds of error no retry can fix: the CRM understood and refused, or the entry is malformed.
local PERMANENT = { api = true, config = true, http = true, refused = true }

-- The client (and attribution) to replay an entry with: the program's till for the entry's
-- store when the target is a program, else the client itself.
local function client_for(target, entry)
  if type(target.till_for) == "function" then
    if entry.till and (entry.kind == "transaction_add" or entry.kind == "transaction_return") then
      local till, err = target:till_for { store_code = entry.till }
      if not till then return nil, err end
      return till.client, till.attribution
    end
    return target.client
  end
  return target
end

--- Replays one entry. Returns result (with .already = true for a CRM duplicate) or nil, err.
function _M.deliver(target, entry)
  local client, attribution = client_for(target, entry)
  if not client then return nil, attribution end
  local p = entry.payload
  if entry.kind == "redemption_hold" then
    -- Expired (or cancelled while the CRM was down): reversed unless the order's bill is there.
    local backend = providers.part(client.provider, "storefront").new(client, {})
    local r, herr = backend:cancel_redemption(nil, p)
    if not r then return nil, herr end
    local ob = type(target.outbox) == "table" and target.outbox or nil
    if ob then ob:mark_failed(entry.id, r.placed and "placed" or "expired", entry.next_at) end
    r.already = r.already or r.placed
    return r
  end
  local policy = providers.part(client.provider, "replay").kinds[entry.kind]
  if not policy then
    return nil, outbox.storage_error("unknown entry kind " .. tostring(entry.kind) .. " for provider " ..
                                     tostring(client.provider.name), { retryable = false })
  end
  local spec, err = policy.request(client.provider.ops, p, client.profile)
  if not spec then return nil, err end
  if policy.lookup and (entry.attempts or 0) > 0 then
    -- Attempts count claims, this one included, and the program may have sent the write before
    -- queueing it: any claimed one may have landed with its reply lost. A failed lookup sends
    -- nothing; its error settles the entry (a retryable one keeps it in line).
    local found, lerr = policy.lookup(client, p)
    if found == nil then return nil, lerr end
    if found then return { already = true, found = true } end
  end
  spec.attribution = attribution
  local r
  r, err = client:request(spec)
  if r and r.partial then
    -- A batch with failed items (an opt-out refused, say) is not delivered: it becomes a dead
    -- letter naming them, never a silent "done".
    local names, code = {}, nil
    for _, f in ipairs(r.failed or {}) do
      names[#names + 1] = tostring(f.key or "item") .. " (" .. tostring(f.code) .. ": " .. tostring(f.message) .. ")"
      code = code or f.code
    end
    return nil, errors.new { kind = "api", code = code, partial = true, failed = r.failed, request_id = r.request_id,
                             message = "partly refused: " .. table.concat(names, ", ") }
  end
  if r then return r end
  if policy.already and policy.already(err) then return { already = true, code = err.code } end
  return nil, err
end

local Drainer = {}
Drainer.__index = Drainer

-- The drainer's options (loyalty.schema fields); run() also takes max_passes.
local OPTIONS = {
  max_attempts = { type = "number", default = 8, integer = true, min = 1, doc = "claims before a dead letter" },
  backoff_base_s = { type = "number", default = 2, min = 0, doc = "seconds" },
  backoff_max_s = { type = "number", default = 600, min = 0, doc = "seconds" },
  lease_s = { type = "number", default = 120, above = 0, doc = "seconds a claim is held" },
  batch = { type = "number", default = 50, integer = true, min = 1, doc = "entries per pass" },
  max_passes = { type = "number", integer = true, min = 1 },
  clock = "function", random = "function", sleep = "function", log = "function",
}
_M.OPTIONS = OPTIONS

--- new(target, ob, opts): target is a loyalty.program or a loyalty.client. opts: max_attempts (8),
-- backoff_base_s (2), backoff_max_s (600), lease_s (120), batch (50), clock, random, sleep, log.
-- Raises on an unknown option or a wrong type (options are code).
function _M.new(target, ob, opts)
  if type(target) ~= "table" or type(ob) ~= "table" then
    error("loyalty.outbox.drainer: target (program or client) and outbox expected", 2)
  end
  opts = schema.assert(OPTIONS, opts or {}, "loyalty.outbox.drainer", 2)
  return setmetatable({
    target = target, ob = ob,
    max_attempts = opts.max_attempts,
    backoff_base = opts.backoff_base_s,
    backoff_max = opts.backoff_max_s,
    lease = opts.lease_s,
    batch = opts.batch,
    clock = opts.clock or ob.clock or outbox.clock,
    random = opts.random or math.random,
    sleep = opts.sleep or env.sleep,
    log = opts.log or function() end,
  }, Drainer)
end

-- Full-jitter-half exponential backoff; a longer Retry-After from the CRM wins.
function Drainer:backoff(attempts, retry_after)
  return util.backoff(attempts, self.backoff_base, self.backoff_max, self.random, retry_after)
end

-- Settles one claimed entry; returns "delivered" | "failed" | "dead" | nil, err (storage).
function Drainer:settle(entry, result, err)
  local ob = self.ob
  if result then
    local ok, serr = ob:mark_delivered(entry.id)
    if ok == nil then return nil, serr end
    self.log("delivered", entry, result)
    return "delivered"
  end
  local permanent = PERMANENT[err and err.kind] and not err.retryable
  if permanent or entry.attempts >= self.max_attempts then
    local ok, serr = ob:mark_dead(entry.id, err)
    if ok == nil then return nil, serr end
    self.log("dead", entry, err)
    return "dead"
  end
  local next_at = self.clock() + self:backoff(entry.attempts, err and err.retry_after)
  local ok, serr = ob:mark_failed(entry.id, err, next_at)
  if ok == nil then return nil, serr end
  self.log("failed", entry, err)
  return "failed"
end

--- One pass: claims a batch of due entries (one per customer) and replays them one by one.
-- Returns counts {claimed, delivered, failed, dead} or nil, err (storage).
function Drainer:pass()
  local entries, err = self.ob:due(self.clock(), self.batch, self.lease)
  if not entries then return nil, err end
  local counts = { claimed = #entries, delivered = 0, failed = 0, dead = 0 }
  for _, entry in ipairs(entries) do
    local ok, result, derr = pcall(_M.deliver, self.target, entry)
    if not ok then -- a programmer error in a replay must not stop the others
      result, derr = nil, outbox.storage_error("replay raised: " .. tostring(result), { retryable = false })
      derr.kind = "config"
    end
    local outcome, serr = self:settle(entry, result, derr)
    if not outcome then return nil, serr end
    counts[outcome] = counts[outcome] + 1
  end
  return counts
end

--- Drains until nothing is due now (or max_passes), then purges delivered entries past their
-- retention. Returns totals {passes, claimed, delivered, failed, dead, purged} or nil, err.
function Drainer:drain(max_passes)
  local total = { passes = 0, claimed = 0, delivered = 0, failed = 0, dead = 0 }
  while not max_passes or total.passes < max_passes do
    local c, err = self:pass()
    if not c then return nil, err, total end
    total.passes = total.passes + 1
    for k, v in pairs(c) do total[k] = total[k] + v end
    if c.claimed == 0 then break end
  end
  -- Delivered entries past the backend's retention go (a backend without one keeps its own rule).
  if type(self.ob.purge_delivered) == "function" then
    local n, perr = self.ob:purge_delivered()
    if not n then return nil, perr, total end
    total.purged = n
  end
  return total
end

--- run(program_or_client, outbox, opts) -> totals | nil, err: drains what is due now.
-- opts as new(), plus max_passes.
function _M.run(target, ob, opts)
  local d = _M.new(target, ob, opts)
  return d:drain(opts and opts.max_passes)
end

return _M

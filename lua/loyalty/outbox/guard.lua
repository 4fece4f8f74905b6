-- An outbox whose store could not be opened (a corrupt or foreign file, a missing directory, no
-- permission, Redis down at start): the program still starts and serves reads. Every outbox call
-- tries to open the store again (at most once per reopen_interval seconds) and until then answers
-- a storage error that says what is wrong and what to do; once open, calls go to the real store.
local core = require "loyalty.core"
local base = require "loyalty.outbox"

local _M = {}

local Guard = {}
Guard.__index = Guard

-- SQLite result codes -> what an operator can do about them.
local SQLITE_HINTS = {
  [5] = "the file is locked by another process (a long transaction, or a stale lock on a network disk)",
  [6] = "the file is locked by another process",
  [8] = "the file or its directory is read-only for this user: fix the permissions",
  [10] = "the disk reported an I/O error",
  [11] = "the database is corrupt: move it aside (keep it: it may hold queued orders) and a new one is made",
  [13] = "the disk is full",
  [14] = "the file or its directory cannot be opened: check that the directory exists and this user may write it",
  [23] = "access denied: check the permissions of the file and its directory",
  [26] = "the file is not an SQLite database (corrupt, or another file at this path): move it aside " ..
         "(keep it: it may hold queued orders) and a new one is made",
}

--- What is wrong with an outbox store, for logs and `loyalty outbox status`.
function _M.explain(err, opts)
  local where = opts.backend == "redis" and ("Redis at " .. tostring(opts.host or "127.0.0.1") .. ":" ..
                tostring(opts.port or 6379)) or tostring(opts.path)
  local why = type(err) == "table" and tostring(err.message or err.kind) or tostring(err)
  local hint = type(err) == "table" and SQLITE_HINTS[err.code]
  local text = "outbox unavailable (" .. where .. "): " .. why
  if hint then text = text .. "; " .. hint end
  return text .. ". Until it can be opened, writes that must be queued fail with a storage error " ..
         "(the caller keeps the order)."
end

--- new(opts, first_err [, emit]) -> an outbox with the usual methods. opts as for outbox.open;
-- emit(level, event, fields) hears when the store opens again or still cannot.
function _M.new(opts, first_err, emit)
  local g = setmetatable({ opts = opts, backend = opts.backend or "sqlite", clock = opts.clock or base.clock,
                           emit = emit, reopen_interval = 1, tried_at = core.now() }, Guard)
  g.reason = _M.explain(first_err, opts)
  g.fault = first_err
  return g
end

-- The real store, opened now if it can be, or nil, a storage error saying why.
function Guard:store()
  if self.inner then return self.inner end
  local now = core.now()
  if now - self.tried_at >= self.reopen_interval then
    self.tried_at = now
    local ok, ob, err = pcall(base.open, self.opts)
    if ok and ob then
      self.inner, self.reason, self.fault = ob, nil, nil
      if self.emit then self.emit("info", "outbox_available", { path = self.opts.path }) end
      return ob
    end
    self.fault = ok and err or tostring(ob)
    self.reason = _M.explain(self.fault, self.opts)
  end
  return nil, base.storage_error(self.reason, { fault = true, code = type(self.fault) == "table" and self.fault.code })
end

for _, name in ipairs { "put", "find", "due", "mark_delivered", "mark_failed", "mark_dead", "retry", "get", "list",
                        "status", "transaction" } do
  Guard[name] = function(self, ...)
    local ob, err = self:store()
    if not ob then return nil, err end
    return ob[name](ob, ...)
  end
end

-- Only the SQLite store purges delivered entries; through the guard, a store without it has none.
function Guard:purge_delivered()
  local ob, err = self:store()
  if not ob then return nil, err end
  if type(ob.purge_delivered) ~= "function" then return 0 end
  return ob:purge_delivered()
end

function Guard:close()
  if self.inner then self.inner:close() end
end

return _M

-- The SQLite outbox: one table in a WAL database (synchronous=FULL), so an entry is on disk when
-- put returns. Several processes may share the file: claims take a write lock (BEGIN IMMEDIATE)
-- and set a lease, and a claim only ever takes a customer's oldest pending entry.
local core = require "loyalty.core"
local errors = require "loyalty.errors"
local base = require "loyalty.outbox"

local _M = {}

local Outbox = {}
Outbox.__index = Outbox

local SCHEMA = [[
CREATE TABLE IF NOT EXISTS loyalty_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  customer_key TEXT NOT NULL,
  till TEXT,
  dedupe_key TEXT UNIQUE,
  payload TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at REAL NOT NULL,
  lease_until REAL NOT NULL DEFAULT 0,
  last_error TEXT,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS loyalty_outbox_pending ON loyalty_outbox (state, customer_key, id);
]]

local function fail(err)
  return nil, base.storage_error(err and err.message or "storage failure", { code = err and err.code })
end

-- How long a write waits for a lock another process holds: a checkout pays at most this before
-- it gets its storage error (and keeps its order).
_M.BUSY_TIMEOUT_MS = require("loyalty.timeouts").sqlite_busy_ms

-- Delivered entries are kept this long (for `loyalty outbox status` and audits), then purged.
_M.KEEP_DELIVERED_S = 3 * 86400

--- open{path, busy_timeout_ms (500), clock, keep_delivered_s} -> outbox | nil, err
function _M.open(opts)
  local checked, cerr = base.check_options(opts)
  if not checked then return nil, cerr end
  if not opts.path or opts.path == "" then
    return nil, errors.config("the SQLite outbox needs a path", "outbox.path")
  end
  local db, err = core.sqlite_open(opts.path, { busy_timeout_ms = opts.busy_timeout_ms or _M.BUSY_TIMEOUT_MS })
  if not db then return fail(err) end
  local ok
  ok, err = db:exec(SCHEMA)
  if not ok then
    db:close()
    return fail(err)
  end
  local keep = opts.keep_delivered_s
  return setmetatable({ db = db, path = opts.path, clock = opts.clock or base.clock, backend = "sqlite",
                        keep_delivered_s = keep or _M.KEEP_DELIVERED_S }, Outbox)
end

local function entry_of(row)
  if not row then return nil end
  return {
    id = row.id, kind = row.kind, customer_key = row.customer_key, till = row.till, dedupe_key = row.dedupe_key,
    payload = base.decode_payload(row.payload), state = row.state, attempts = row.attempts,
    next_at = row.next_at, lease_until = row.lease_until, last_error = row.last_error,
    created_at = row.created_at, updated_at = row.updated_at,
  }
end

-- Runs fn inside BEGIN IMMEDIATE .. COMMIT; rolls back on failure.
function Outbox:transaction(fn)
  local ok, err = self.db:exec("BEGIN IMMEDIATE")
  if not ok then return fail(err) end
  local r1, r2 = fn()
  if r1 == nil then
    self.db:exec("ROLLBACK")
    return nil, r2
  end
  ok, err = self.db:exec("COMMIT")
  if not ok then
    self.db:exec("ROLLBACK")
    return fail(err)
  end
  return r1, r2
end

--- put(entry) -> id, existing (true when dedupe_key was already queued) | nil, err.
-- Durable on return: the commit is synced (WAL, synchronous=FULL).
function Outbox:put(entry)
  local e, perr = base.prepare(entry)
  if not e then return nil, perr end
  local now = self.clock()
  local db = self.db
  if e.dedupe_key then
    local rows, err = db:query("SELECT id FROM loyalty_outbox WHERE dedupe_key = ?", e.dedupe_key)
    if not rows then return fail(err) end
    if rows[1] then return rows[1].id, true end
  end
  local changes, id = db:run(
    "INSERT INTO loyalty_outbox (kind, customer_key, till, dedupe_key, payload, next_at, created_at, updated_at)" ..
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
    e.kind, e.customer_key, e.till, e.dedupe_key, e.payload_json, e.next_at or now, now, now)
  if not changes then return fail(id) end
  if changes == 0 then -- a concurrent put of the same dedupe_key won
    local rows, err = db:query("SELECT id FROM loyalty_outbox WHERE dedupe_key = ?", e.dedupe_key)
    if not rows then return fail(err) end
    return rows[1] and rows[1].id, true
  end
  return id, false
end

--- due(now, limit, lease_seconds) -> { entry... }: each customer's oldest pending entry when it
-- is due and not leased, claimed for lease_seconds (attempts counted at the claim, so an entry
-- that crashes its drainer still reaches the dead letters).
function Outbox:due(now, limit, lease_seconds)
  now = now or self.clock()
  limit = limit or 100
  local lease_until = now + (lease_seconds or 60)
  return self:transaction(function()
    local rows, err = self.db:query(
      "SELECT o.* FROM loyalty_outbox o WHERE o.state = 'pending' AND o.id = " ..
      "(SELECT min(p.id) FROM loyalty_outbox p WHERE p.state = 'pending' AND p.customer_key = o.customer_key)" ..
      " AND o.next_at <= ? AND o.lease_until <= ? ORDER BY o.id LIMIT ?", now, now, limit)
    if not rows then return fail(err) end
    local out = {}
    for i, row in ipairs(rows) do
      local ok, uerr = self.db:run(
        "UPDATE loyalty_outbox SET lease_until = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
        lease_until, now, row.id)
      if not ok then return fail(uerr) end
      row.attempts, row.lease_until = row.attempts + 1, lease_until
      out[i] = entry_of(row)
    end
    return out
  end)
end

local function update(self, sql, ...)
  local changes, err = self.db:run(sql, ...)
  if not changes then return fail(err) end
  return changes > 0
end

--- Delivered: final. Returns true, or false when the entry was not pending.
function Outbox:mark_delivered(id)
  return update(self, "UPDATE loyalty_outbox SET state = 'delivered', lease_until = 0, updated_at = ?" ..
                " WHERE id = ? AND state = 'pending'", self.clock(), id)
end

--- A failed attempt: back to pending at next_at, keeping the error.
function Outbox:mark_failed(id, err, next_at)
  return update(self, "UPDATE loyalty_outbox SET last_error = ?, next_at = ?, lease_until = 0, updated_at = ?" ..
                " WHERE id = ? AND state = 'pending'", base.error_text(err), next_at, self.clock(), id)
end

--- A dead letter: kept with its last error until retried by hand.
function Outbox:mark_dead(id, err)
  return update(self, "UPDATE loyalty_outbox SET state = 'dead', last_error = ?, lease_until = 0, updated_at = ?" ..
                " WHERE id = ? AND state = 'pending'", base.error_text(err), self.clock(), id)
end

--- Puts a dead (or pending) entry back in line now, with its attempts reset.
function Outbox:retry(id)
  local now = self.clock()
  return update(self, "UPDATE loyalty_outbox SET state = 'pending', attempts = 0, next_at = ?, lease_until = 0," ..
                " updated_at = ? WHERE id = ? AND state IN ('dead', 'pending')", now, now, id)
end

--- Removes delivered entries older than keep_delivered_s; returns how many, or nil, err.
function Outbox:purge_delivered()
  local changes, err = self.db:run("DELETE FROM loyalty_outbox WHERE state = 'delivered' AND updated_at < ?",
                                   self.clock() - self.keep_delivered_s)
  if not changes then return fail(err) end
  return changes
end

function Outbox:get(id)
  local rows, err = self.db:query("SELECT * FROM loyalty_outbox WHERE id = ?", id)
  if not rows then return fail(err) end
  return entry_of(rows[1])
end

--- The entry queued under dedupe_key, or nil.
function Outbox:find(dedupe_key)
  local rows, err = self.db:query("SELECT * FROM loyalty_outbox WHERE dedupe_key = ?", dedupe_key)
  if not rows then return fail(err) end
  return entry_of(rows[1])
end

--- All entries (oldest first), optionally of one state: for tools and tests.
function Outbox:list(state, limit)
  local rows, err
  if state then
    rows, err = self.db:query("SELECT * FROM loyalty_outbox WHERE state = ? ORDER BY id LIMIT ?", state, limit or -1)
  else
    rows, err = self.db:query("SELECT * FROM loyalty_outbox ORDER BY id LIMIT ?", limit or -1)
  end
  if not rows then return fail(err) end
  for i, row in ipairs(rows) do rows[i] = entry_of(row) end
  return rows
end

--- { counts = {pending, delivered, dead}, oldest_pending = entry|nil, dead = {entry...} (50 newest),
--    keep_delivered_s }
function Outbox:status()
  local rows, err = self.db:query("SELECT state, count(*) AS n FROM loyalty_outbox GROUP BY state")
  if not rows then return fail(err) end
  local counts = { pending = 0, delivered = 0, dead = 0 }
  for _, r in ipairs(rows) do counts[r.state] = r.n end
  local oldest
  oldest, err = self.db:query("SELECT * FROM loyalty_outbox WHERE state = 'pending' ORDER BY id LIMIT 1")
  if not oldest then return fail(err) end
  local dead
  dead, err = self.db:query("SELECT * FROM loyalty_outbox WHERE state = 'dead' ORDER BY id DESC LIMIT 50")
  if not dead then return fail(err) end
  for i, row in ipairs(dead) do dead[i] = entry_of(row) end
  return { backend = "sqlite", counts = counts, oldest_pending = entry_of(oldest[1]), dead = dead,
           keep_delivered_s = self.keep_delivered_s }
end

function Outbox:close()
  if self.db then self.db:close() end
end

Outbox.__close = Outbox.close
Outbox.__gc = Outbox.close

return _M

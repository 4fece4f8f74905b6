-- Every timeout default in one table. A module that needs one reads it from here; the C core's
-- fallbacks (csrc/transfer.c, csrc/outbox_sqlite.c) hold the same numbers, though Lua always
-- passes its own. Milliseconds unless the name says seconds.
return {
  request_ms = 10000,      -- a whole CRM call (every attempt and backoff): the client's deadline
  connect_ms = 3000,       -- one TCP/TLS connect to the CRM
  redis_ms = 2000,         -- one Redis command of the outbox (connect, send, read)
  sqlite_busy_ms = 500,    -- how long an outbox write waits for another process's SQLite lock
  token_lock_wait_s = 10,  -- nginx: how long a worker waits for another worker's token refresh
  token_lock_ttl_s = 30,   -- nginx: a crashed refresher's lock expires after this
  keepalive_ms = 60000,    -- nginx: an idle pooled connection (CRM or Redis) is closed after this
}

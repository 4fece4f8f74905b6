-- Store settings with an outbox, for trying `loyalty outbox` against the sandbox (`make sandbox`):
--   loyalty outbox status --config examples/outbox.conf.lua
--   loyalty outbox drain --once --config examples/outbox.conf.lua
-- Orders the CRM could not take wait in a SQLite file (LOYALTY_OUTBOX, default under TMPDIR or
-- /tmp; a store keeps it under /var/lib/<store>/). Secrets come from the environment.
return {
  provider = "capillary",
  crm = {
    base_url = env("LOYALTY_BASE_URL", "http://127.0.0.1:8089"),
    username = env("LOYALTY_USERNAME", "store.server"),   -- the sandbox seed's till
    password = env("LOYALTY_PASSWORD", "server123"),
    timeout_ms = 5000,
  },
  identifier = "mobile",
  outbox = {
    backend = "sqlite",
    path = env("LOYALTY_OUTBOX", env("TMPDIR", "/tmp") .. "/loyalty-outbox.db"),
    max_attempts = 8,               -- then a dead letter, kept with its last error
    keep_delivered_s = 3 * 86400,   -- delivered entries are purged after 3 days
  },
  -- Every posted order (queued ones too), for `loyalty rules replay` and `loyalty rules drift`.
  order_log = { path = env("LOYALTY_ORDER_LOG", env("TMPDIR", "/tmp") .. "/loyalty-orders.jsonl") },
}

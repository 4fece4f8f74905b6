-- Store settings for loyalty.program: the switches a store admin sets, in one editable file.
-- Unknown keys and wrong types are reported when the file loads, with the key's name.
-- Secrets come from the environment with env("NAME", default); never write them here.
return {
  provider = "capillary",

  crm = {
    -- The local sandbox by default; for a real account set environment = "production" and
    -- cluster = "india" | "apac2" | "sea" | "eu" | "us" | "ushc" | "china", or "dev" / "stage".
    base_url = env("LOYALTY_BASE_URL", "http://127.0.0.1:8089"),
    username = env("LOYALTY_USERNAME", "store.server"),   -- the default till
    password = env("LOYALTY_PASSWORD", "server123"),
    -- client_key = env("LOYALTY_CLIENT_KEY"), client_secret = env("LOYALTY_CLIENT_SECRET"),
    timeout_ms = 5000,                -- the deadline of a whole call (orders, returns), retries included
  },
  shopper_timeout_ms = 2000,        -- the deadline of summary, quote and login sync: shoppers are waiting

  -- Post each order against the till of the store that took it (Basic auth: that till's login).
  use_order_store_till = true,
  store_tills = {
    ["store.two"] = { username = "store.two.till", password = env("LOYALTY_STORE_TWO_PASSWORD", "till456") },
  },

  identifier = "mobile",            -- mobile | email | external_id | attribute:pan_card
  sync_on_login = true,             -- update user data from the CRM on login
  profile_sync = "fill_blank",      -- crm_wins | fill_blank
  registration = true,              -- post new sign-ups to the CRM
  registration_crm_first = true,    -- ask the CRM first; a refusal stops the sign-up
  post_subscriptions = true,        -- email / SMS opt-in and opt-out
  earn_on_order = true,             -- successful orders earn points
  post_email_only_orders = false,   -- orders whose customer has an email but not the identifier (mobile)
  skip_redemption_otp = false,      -- false: an OTP is sent and must be given to redeem
  program_id = 1016,                -- the loyalty programme (points/isredeemable needs it; docs/capillary.md)

  -- Redemption limits and category attributes, edited by analysts (see docs/rules.md).
  rules = env("LOYALTY_RULES", "examples/rules"),
  -- Where each accepted rule set is saved, and loaded from when the rule files fail at start or
  -- on a reload (a directory the nginx workers can write; unset: nothing is saved).
  rules_last_good = env("LOYALTY_RULES_LAST_GOOD"),
}

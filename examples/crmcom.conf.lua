-- luacheck: read globals env
-- Store settings for loyalty.program on CRM.COM Rewards (legacy Web API). Unknown keys, wrong types
-- and settings that have no CRM.COM meaning (OTP, sign-up, subscriptions, Capillary tills) are
-- refused when the file loads, with the key's name. Secrets come from the environment.
return {
  provider = "crmcom",

  crm = {
    -- {server}/crmapi/rest/v2; the local sandbox by default.
    base_url = env("CRMCOM_BASE_URL", "http://127.0.0.1:8089/crmapi/rest/v2"),
    username = env("CRMCOM_USERNAME", "pos.user"),
    password = env("CRMCOM_PASSWORD", "pos123"),
    organisation = env("CRMCOM_ORGANISATION", "SANDBOXORG"),
    unit = env("CRMCOM_UNIT", "UNIT-LIMASSOL"),   -- the store's unit (optional: the user's default)
    -- api_key = env("CRMCOM_API_KEY"),           -- instead of username/password/organisation
    timeout_ms = 5000,
    -- The CRM.COM release the server runs (docs/crmcom.md): R17+ names the accounts receivable on
    -- purchases; R5-R16 the participant; R4 sends rewards_participants/show as GET.
    release = env("CRMCOM_RELEASE", "R17"),
    sync_definition = { name = "PRODUCTS" },      -- products/synchronise's definition (mandatory on R17+)
  },

  -- mobile | email (access tokens of the participant) | external_id (the participant number
  -- before R17, the accounts receivable number from R17)
  identifier = "mobile",
  sync_on_login = true,             -- names from the CRM on login
  profile_sync = "fill_blank",
  earn_on_order = true,             -- orders are purchases: the wallet is awarded cashback
  post_email_only_orders = true,    -- an email identifies a participant as well as a mobile
}

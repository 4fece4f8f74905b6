-- Every CRM.COM sandbox behaviour that the reference (shared/reference/crmcom.md) does not document
-- lives here, each marked [INF] with its reason, so that a correction is a one-line change.
local _M = {}

-- The release the sandbox serves when the seed's crmcom.release is not given: the current
-- documented flow (R17, as the client's default). [DOC CRM-WIKI] R4: GET rewards_participants/show;
-- R5+: POST show only; R17+: accounts_receivable_identifier mandatory on purchases and spend
-- requests (rewards_participant_identifier deprecated: ignored).
_M.DEFAULT_RELEASE = "R17"

-- [INF] products/synchronise needs synchronisation_definition_identifier from this release on
-- ("mandatory in later revisions", CRM-WIKI pageId=490685 v26, no release named); on older
-- releases it is checked when given. Definitions come from the seed (crmcom.synchronisation_definitions).
_M.SYNC_DEFINITION_FROM = 17

-- Error codes and HTTP statuses. [DOC] "JSON is returned by all API responses, including errors"
-- (wiki Introduction): every error carries the {status, data} envelope. No catalogue of codes is
-- documented (gap 2). [INF] The HTTP statuses follow CRM.COM's documented ones (Self-Service
-- OpenAPI, crmcom.md §5.2): 401 invalid token or login, 404 not found, 400 invalid request; a
-- refused business rule (spend limits, cancelled purchase) is 400 as well. 405 for a method on
-- the wrong HTTP verb and 404 (without meaning "not found") for an unknown method are ours.
_M.CODES = {
  invalid_token = "INVALID_TOKEN", login_failed = "AUTHENTICATION_FAILED", invalid = "INVALID_PARAMETER",
  not_found = "NOT_FOUND", not_posted = "PURCHASE_NOT_POSTED", cancelled = "ALREADY_CANCELLED",
  spend_not_allowed = "SPEND_NOT_ALLOWED", below_minimum = "SPEND_BELOW_MINIMUM",
  no_balance = "INSUFFICIENT_WALLET_BALANCE", too_many = "TOO_MANY_PRODUCTS", unknown_method = "UNKNOWN_METHOD",
  wrong_method = "METHOD_NOT_ALLOWED",
}
_M.ERROR_HTTP = { INVALID_TOKEN = 401, AUTHENTICATION_FAILED = 401, NOT_FOUND = 404 }
_M.DEFAULT_ERROR_HTTP = 400
_M.UNKNOWN_METHOD_HTTP = 404
_M.WRONG_METHOD_HTTP = 405

-- [INF] Per-product error codes of products/synchronise (the field names are documented, the values not).
_M.PRODUCT_CODES = { missing_code = "MISSING_CODE", invalid_code = "INVALID_CODE" }
_M.MAX_PRODUCT_CODE = 64

-- [DOC] At most 1,000 products per synchronise call; [INF] more is refused as a whole.
_M.MAX_SYNC_PRODUCTS = 1000

-- [DOC R12+] Tokens live two hours from issue; a seed user may shorten it (token_ttl_seconds) for tests.
_M.TOKEN_TTL_SECONDS = 7200
-- [INF] The JWT is not signed with a real secret: clients must treat it as opaque.

-- [INF] The award is award_percent of the net amount of eligible lines, rounded to cents;
-- lines of excluded products earn nothing; lines without a product identifier (or of a product
-- never synchronised) book the Default Product and earn.
-- [INF] The award is credited to the wallet when the purchase is created (POSTED).
-- [INF] Preview: additional spend = min(wallet balance, basket total), or the balance for an empty
-- basket; instant and automatic spend are 0 (no instant-spend offers in the seed).
-- [INF] A spend request without spend_amount asks for the purchase total (documented default);
-- the actual amount is capped by wallet balance, maximum per transaction and what is left of the
-- purchase total; a request below the minimum, or an actual amount below it, is refused.
-- [INF] external_system_reference_number de-duplicates purchases and spend requests: a replay
-- returns the first event and moves no money.
-- [INF] Cancelling a purchase takes its award back (the wallet may go negative) and refunds the
-- spend requests made on it; a second cancel is refused.
-- [INF] purchases/list returns data as an array; number_of_results defaults to 50, offset to 0.
_M.DEFAULT_NUMBER_OF_RESULTS = 50
-- [INF] A participant's sign_up_by_unit is the seed's first unit (by id); events carry the
-- login's unit as performed_by_unit (Unit objects are documented, which unit is ours).
-- [INF] fields_set filters the top-level keys of data (of each item for arrays).

return _M

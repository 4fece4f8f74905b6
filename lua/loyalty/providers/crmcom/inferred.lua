-- Every client-side CRM.COM behaviour that the reference (shared/reference/crmcom.md) does not
-- document lives here, each marked [INF] with its reason, so that a correction is a one-line change.
local _M = {}

-- [INF] The token's life when the login reply does not say: the documented R12+ rule (two hours
-- after issue, used or not); pre-R12 tokens expired after one idle hour, which this also covers.
_M.TOKEN_TTL_SECONDS = 7200

-- The release (API level) the account speaks when the `release` option is not given: the
-- current documented flow. [DOC CRM-WIKI] The newest revisions of purchases/create (pageId=514482)
-- and spend_requests/create (pageId=520062) describe R17: accounts_receivable_identifier
-- mandatory, rewards_participant_identifier deprecated; POST rewards_participants/show (x/yHkH).
-- [INF] R18 (performed_by_business_unit_identifier) is not modelled: R18 servers are spoken to
-- as R17 (performed_by_unit_identifier is deprecated there, not removed).
_M.DEFAULT_RELEASE = "R17"

-- [INF] From R17 the storefront's external_id names the accounts receivable (rewards data hangs
-- off the accounts receivable from R17, crmcom.md §3.1); before R17 it is the participant number.
-- rewards_participants/show cannot take an accounts receivable, so on R17+ shoppers are looked up
-- by an access token (mobile, email, card) or the participant number/id.

-- [INF] products/synchronise: synchronisation_definition_identifier is mandatory "in later
-- revisions" [DOC CRM-WIKI pageId=490685 v22->v26] without a release named; the client asks for it
-- from R17 on (the release whose docs the default follows) and sends it on any release when given.

-- Errors. [DOC] The legacy Web API returns JSON for every reply, errors included (wiki
-- Introduction), and documents no error catalogue (gap 2). CRM.COM's documented HTTP statuses
-- (Self-Service OpenAPI, crmcom.md §5.2: 401 token invalid, 403 no permission, 404 not found)
-- decide first; the codes below are a fallback for servers that answer errors with HTTP 200.
-- [INF] status.code values meaning "the token is not (or no longer) valid". These renew the
-- token once and replay the call.
_M.TOKEN_REJECTED_CODES = { INVALID_TOKEN = true, TOKEN_EXPIRED = true, EXPIRED_TOKEN = true,
                            AUTHENTICATION_ERROR = true, UNAUTHORIZED = true }

-- [INF] status.code values of a refused login (wrong username/password/key).
_M.LOGIN_FAILED_CODES = { AUTHENTICATION_FAILED = true, INVALID_CREDENTIALS = true }

-- [INF] status.code values meaning "no such participant / event" (err.not_found), besides HTTP 404.
_M.NOT_FOUND_CODES = { NOT_FOUND = true }

-- [INF] The Web API key goes as Basic username with an empty password, sent as base64(key ":")
-- (the documented "password left empty"; public snippets omit the colon, the sandbox takes both).
_M.API_KEY_WITH_COLON = true

-- [INF] Errors in the envelope may come with HTTP 200 or 4xx (gap 2): the envelope decides.
-- HTTP 5xx, 429 and non-JSON error pages are retryable transport-level failures.
_M.RETRYABLE_HTTP = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

-- [INF] The participant lookup by a storefront identifier: external_id is the participant
-- number (before R17, see above); mobile, email (and cards) are access tokens of the participant,
-- sent as access_token_identifier.authentication_code (the POS guide identifies by email, phone or card).
_M.IDENTIFIER_FIELDS = { id = "id", number = "number", external_id = "number" }

-- [INF] Batches of products/synchronise in flight at once by default: the documented limit is on
-- products per call (1,000), none on concurrent calls.
_M.SYNC_MAX_IN_FLIGHT = 4
_M.SYNC_BATCH_SIZE = 1000 -- [DOC] maximum per call

-- [INF] The amount offered to spend: min(additional spend, maximum per transaction), offered when
-- at least the minimum and allow_spending is not false (crmcom.md §4.5).
-- [INF] Amount to collect: total - total_spend_amount under FRONT_END_REDUCTION; the full total
-- under BACK_END_REDUCTION (the customer is credited later).

-- [INF] Money is rounded to cents when the adapter adds or subtracts amounts.
_M.MONEY_DECIMALS = 2

return _M

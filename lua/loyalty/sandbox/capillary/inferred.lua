-- Every Capillary sandbox behaviour that Capillary does not document lives here, each marked [INF] with the
-- reason, so that a correction is a one-line change. Documented facts live next to the handlers.
local _M = {}

-- [INF] HTTP status for item-level v1.1 failures: 200 with the code in the body, as real clients
-- (C-SHOPIFY, C-RAILS) branch on the body; auth and request-level errors use the HTTP status too.
-- [DOC] Except 816 ("Customer not found for organization") on points calls, which the redeem-points
-- OpenAPI files under HTTP 400 (S-DOCS reference/redeem-points, responses."400"); [INF] the same
-- for points/isredeemable and points/validationcode (one service, same code).
_M.V11_ITEM_FAILURE_HTTP_STATUS = 200
_M.V11_HTTP_BY_CODE = { [816] = 400 }

-- [DOC] points/isredeemable: program_id is mandatory (S-DOCS reference/check-if-points-redeemable;
-- S-V11 listed it optional). [INF] Missing or unknown: the item fails with 400-level code 400
-- "Input is invalid" under HTTP 400, the request-level "input is invalid" of the v1.1 code table.
_M.V11_PROGRAM_ID_REQUIRED = { http = 400, code = 400, message = "Input is invalid: program_id is mandatory" }

-- [INF] customer/get not-found: the reference names 1011/1012 or 816; we answer 1012.
_M.V11_CUSTOMER_GET_NOT_FOUND = { code = "1012", message = "Customer not found" }

-- [INF] Request-level status of a single-item v1.1 call whose item failed: the documented
-- "all requests have failed" code.
_M.V11_ALL_FAILED = { code = 500, message = "All requests have failed due to errors" }
_M.V11_PARTIAL = { code = 201, message = "Some requests have failed due to errors" }

-- [INF] customer/add on an existing identifier updates it (documented) and says so.
_M.V11_UPSERT_UPDATED_MESSAGE = "Customer successfully updated"

-- [INF] transaction/get for an unknown bill: no documented code; 602 is "invalid number".
_M.V11_TRANSACTION_NOT_FOUND = { code = 602, message = "Transaction not found" }

-- GET /v1.1/customer/transactions [DOC S-V11 _customer.md "Get Customer Transactions", lines
-- 1976-2114 at 20ecf691]: `count` a number, `start` the id of the first transaction shown (a
-- string), `rows` (a string), per-transaction `points` {issued, redeemed, returned, expired,
-- program_id} and custom_fields/extended_fields; item_status 1052 "Transactions fetched successfully";
-- `limit` defaults to 10, `offset` skips records "from the top", newest first by default.
-- [INF] `count` counts the matching transactions (51 in the sample with 2 shown), `rows` the
-- transactions in this reply; a RETURN is its own row of type RETURN with its return_type;
-- `sort`/`order` are not modelled; an unknown customer is customer/get's item-level not-found.
_M.V11_CUSTOMER_TRANSACTIONS = { default_limit = 10, code = "1052", message = "Transactions fetched successfully" }

-- A FULL return of a bill already fully returned: documented 628 "The entire transaction is already
-- returned" (S-V11 transaction error codes); a FULL return after a partial one: 639; a line beyond
-- what remains of it: 629; a line the bill does not have: 688; an amount beyond the bill: 630.
_M.V11_ALREADY_RETURNED = { code = 628, message = "The entire transaction is already returned." }
_M.V11_FULL_AFTER_PARTIAL = { code = 639, message = "Unable to return full transaction. A part of the " ..
  "transaction or complete transaction is already returned." }
_M.V11_RETURN_QTY = { code = 629, message = "The return quantity of the item is more than available quantity." }
_M.V11_NO_MATCHING_LINE = { code = 688, message = "No matching line-item found for return." }
_M.V11_LINES_AFTER_AMOUNT = { code = 632, message = "Cannot return the transaction with return type LINE_ITEM " ..
  "because the type AMOUNT has already been used for returning the same transaction." }
_M.V11_AMOUNT_AFTER_LINES = { code = 635, message = "Cannot return the transaction with the return type AMOUNT " ..
  "because the type LINE_ITEM has been used for returning the same transaction." }
_M.V11_RETURN_AMOUNT = { code = 630, message = "The return amount is more than the transaction/line-item amount." }

-- [INF] customer/transactions shows a RETURN's returned lines as line_items.line_item[] {serial,
-- item_code, qty, amount} (the documented sample lists bills with their details; the exact
-- fields of a return's lines are not shown).
_M.V11_RETURN_ROWS_HAVE_LINES = true

-- [INF] v2 points/reverse may give back part of a redemption, several times, up to what was
-- redeemed (pointsToBeReversed is a number); 3802 once nothing is left to reverse.
_M.PARTIAL_REVERSALS = true

-- [INF] Bill-number uniqueness (CONF_LOYALTY_BILL_NUMBER_UNIQUE_IN_DAYS) is org-wide and forever.
_M.BILL_NUMBER_SCOPE = "org"

-- [INF] Returns reduce loyalty_points, lifetime_points and lifetime_purchases; the balance may go
-- negative (the points were already spent); tiers are never downgraded by a return.
_M.RETURN_REDUCES_LIFETIME = true

-- [INF] Points redeem with a known external_reference_number returns the original item again
-- (same redemption_id, balance as it was) and debits nothing: the docs say "either returns an
-- error or the original result (depending on the API)" without naming which for points/redeem.
_M.REDEEM_DUPLICATE_RETURNS_ORIGINAL = true

-- [INF] An OTP is consumed by a successful redeem / validate; every issue call (reissue included)
-- counts towards the daily limit; the day is the server's UTC day.
_M.OTP_CONSUMED_ON_USE = true
_M.OTP_REISSUE_COUNTS = true
_M.OTP_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

-- [DOC] v2 OTP validate failure: HTTP 200 with {entity: false, warnings: []} and nothing else
-- (S-V2 _otp.md "Sample Failure Response"); [INF] the HTTP status is not stated.
-- [INF] GET /v2/otp with nothing valid: 9001 "no valid OTP found" with HTTP 404.
_M.V2_OTP_NOT_FOUND = { http = 404, code = 9001, message = "No valid OTP found" }

-- [DOC, two readings] points/validationcode: S-DOCS reference/issue-validation-code says points
-- "must be positive", yet its own sample succeeds with -100 (corrections.md #16). [INF] The text
-- wins: zero or negative points answer 801.
_M.V11_VALIDATIONCODE_POSITIVE_ONLY = true

-- [INF] v1.1 daily OTP limit: 860 "unable to issue OTP" (v2 documents 429).
_M.V11_OTP_LIMIT = { code = 860, message = "Unable to issue validation code: daily limit reached" }

-- [INF] HTTP statuses of v2 errors (the table in §3.3 gives the classes, not the mapping per code).
_M.V2_HTTP = { invalid = 400, not_found = 404, conflict = 400, locked = 521, rate_limited = 429 }

-- [INF] POST /v2/customers with an identifier already registered in the same source: 8007.
_M.V2_CUSTOMER_EXISTS = { code = 8007, message = "Customer with the identifier already exists in the source" }
-- [INF] PUT/GET /v2/customers/{id} with an unknown id: 8009 ("bad customer id", from changeIdentifier).
_M.V2_BAD_CUSTOMER_ID = { code = 8009, message = "Invalid customer id" }

-- [INF] Token endpoint failure shape and status (gap 3 in the reference).
_M.OAUTH_FAILURE = { http = 401, code = 1001, message = "Failed to generate OAuth token" }
-- [INF] Expired or unknown token: HTTP 401 with the envelope of the API generation called.
_M.AUTH_FAILURE_MESSAGE = "Unauthorized: check username/password or authentication token"

-- [INF] The access token looks like the documented JWT (header.payload.signature) but is not
-- signed: clients must treat it as opaque, as the docs say.
_M.TOKEN_ALG = "none"


-- [INF] Redemption and reversal ids: 6-character alphanumerics like the doc samples (`7t4y2a`).
_M.REDEMPTION_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

-- [INF] Whole-request problems (bad JSON, missing root) in v1.1: HTTP 400 with status code 400.
_M.V11_BAD_REQUEST = { http = 400, code = 400, message = "Input is invalid" }

-- [INF] Per-customer write lock TTL (seconds): long enough for any write, short enough that a
-- crashed writer cannot wedge a customer.
_M.LOCK_TTL = 5

-- [INF] Customer ids and transaction ids: sequential numbers from these bases (docs show 9 digits).
_M.CUSTOMER_ID_BASE = 343445000
_M.TRANSACTION_ID_BASE = 37813000

-- [INF] Shape of GET /v2/customers/{id} (the reference lists the embeds, not the body).
_M.V2_CUSTOMER_SHAPE = "profiles+loyaltyInfo+extendedFields+embeds"

return _M

-- Where Capillary's own documents disagree or say nothing, the client's choice lives here with its
-- sources (shared/reference/corrections.md keys: S-V11, S-V2, S-DOCS, C-SHOPIFY). [DOC] marks a fact,
-- [INF] a choice; both readings of a disagreement are accepted, and this file says which is sent.
local _M = {}

-- [DOC, two readings] v1.1 envelope: S-V11@876899d (2018) and C-SHOPIFY (CustomerController.php:37,
-- 59) read `response.customers.customer[0]`; S-V11@20ecf691 (2021) prints customer/get and
-- coupon/redeem without the `response` root and with one object instead of an array. The client
-- accepts both, on success and on failure (providers.capillary.v11_body); [INF] production most
-- likely wraps.
_M.V11_ROOT_OPTIONAL = true

-- [DOC, two readings] points/isredeemable `program_id`: optional in S-V11, mandatory (`program_id*`)
-- in S-DOCS reference/check-if-points-redeemable. The current docs win: the client refuses to send
-- the call without it (config error, key program_id). [INF] The program learns it from the customer's
-- first points summary when the store sets none (providers/capillary/storefront.lua).
_M.ISREDEEMABLE_PROGRAM_ID_REQUIRED = true

-- [DOC] 889 "Points processing failed … Reason: Failed to Connect to Service / Invalid Customer
-- identifiers passed" (S-DOCS): [INF] retried only when the message names the connection failure
-- (these words, case-insensitive) and not identifiers; a bare 889 is final.
_M.CODE_889_TRANSIENT_WORDS = { "connect" }
_M.CODE_889_FINAL_WORDS = { "identifier" }

-- [DOC] Content-Type: application/json is listed as required on every call (seed 002 overview
-- headers, S-V11 index): the client sends it on GETs as well.

-- [DOC, two readings] validationcode codes: strings in S-V11 ("200"), numbers in S-DOCS; coupon
-- isredeemable's item_status carries `status` (S-V11 _coupon.md) where others carry `success`.
-- The normaliser reads both (providers/capillary/normalize.lua).

-- [DOC] customer/transactions: `count` a number, `start` the first transaction's id, `rows` a string
-- (S-V11 lines 1976-2114); r.count, r.start, r.rows. [INF] Paging stops when offset + rows reaches
-- count, on a short page, or when a page starts where an earlier one did (offset ignored).

-- [INF] Hosts: dev/stage are the nightly hosts of sample URLs (no non-production hosts are
-- documented; MartJack names Dev/Stage/Production, seed 000): providers.capillary.ENVIRONMENTS.

return _M

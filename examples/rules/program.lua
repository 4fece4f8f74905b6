-- Program-wide choices for the whole rule set.
-- Every points figure (earned, redeemed, given back on a return) is rounded the same way.
currency  = "INR"
rounding  = "floor"   -- floor, round or ceil
round_per = "line"    -- "line": each line's points are rounded; "order": the order's total is rounded once

-- The tiers of the loyalty program, as the CRM names them; `rules check` reports any other tier name.
tier_names = { "SILVER", "GOLD", "PLATINUM" }

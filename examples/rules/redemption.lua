-- When and how far points can pay for an order.

point_value = 0.25   -- 1 point pays 0.25 rupees
min_points  = 200    -- fewer points than this cannot be redeemed
max_points  = 5000   -- per order
multiple_of = 50     -- redeem 50, 100, 150, ... points
max_share   = 0.5    -- points pay at most half of the order total

-- Tiers that get different limits; anything not listed here uses the values above.
tiers = {
  GOLD     = { max_points = 7500 },
  PLATINUM = { max_points = 10000, max_share = 0.8 },
}

-- Gift cards are money: they cannot be bought with points.
refuse_categories = { "gift-cards" }

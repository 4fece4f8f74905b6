-- How many points an order earns (the estimate shown before the CRM answers).

-- 1 point for every 100 rupees of merchandise, after line discounts.
points_earned = 1
for_every     = 100

minimum_order = 499    -- orders with less merchandise than this earn nothing
cap_per_order = 2500   -- never more than this many points on one order

exclude_shipping = true
exclude_tax      = true
exclude_categories = { "gift-cards", "tobacco" }
exclude_skus       = { "BAG-PAPER" }          -- carry bags are sold at cost

-- A line in several categories gets the highest of their multipliers (they do not stack).
category_multipliers = {
  ["electronics"] = 2,
  ["fashion"]     = 3,
  ["groceries"]   = 0.5,
}

-- A SKU multiplier replaces the category multiplier for that SKU.
sku_multipliers = {
  ["PHONE-X12-128"] = 4,   -- launch promotion
}

-- Applied on top of everything else.
tier_multipliers = { SILVER = 1, GOLD = 1.25, PLATINUM = 1.5 }

-- Double points on our own label (SKUs starting with "SK-") for GOLD and PLATINUM members.
function bonus(line, customer)
  local own_label = line.sku ~= nil and line.sku:sub(1, 3) == "SK-"
  if own_label and (customer.tier == "GOLD" or customer.tier == "PLATINUM") then
    return 2, "own label, double points for " .. customer.tier
  end
end

-- Attributes posted on each order line, by the line's categories.
-- A line in several categories: the category listed first in `precedence` wins an attribute both set;
-- categories not listed there come after, in the order the line lists them.
-- sku_attributes override category attributes.

attributes = {
  ["electronics"] = { department = "electronics", gst_slab = "18", warranty = "1 year" },
  ["mobiles"]     = { department = "mobiles", gst_slab = "18", imei_required = true },
  ["fashion"]     = { department = "apparel", gst_slab = "12", returnable_days = 30 },
  ["groceries"]   = { department = "grocery", gst_slab = "5", returnable_days = 0 },
  ["gift-cards"]  = { department = "gift cards", gst_slab = "0" },
}

sku_attributes = {
  ["PHONE-X12-128"] = { warranty = "2 years" },
}

precedence = { "mobiles", "electronics", "fashion", "groceries", "gift-cards" }

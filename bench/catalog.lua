-- The store catalogue the rules benches price carts from: a spread of categories, prices and
-- a line without categories.
return {
  { sku = "PHONE-X12-128", price = 24999, categories = { "mobiles", "electronics" }, discount = 999 },
  { sku = "SK-TSHIRT-M", price = 499, categories = { "fashion" } },
  { sku = "RICE-5KG", price = 450, categories = { "groceries" } },
  { sku = "BAG-PAPER", price = 10 },
  { sku = "HDMI-2M", price = 599, categories = { "electronics" } },
  { sku = "SK-JACKET", price = 2999, categories = { "fashion" } },
  { sku = "TOASTER-2S", price = 1299, categories = { "electronics", "home" } },
  { sku = "DAL-1KG", price = 140, categories = { "groceries" } },
  { sku = "CIG-20", price = 340, categories = { "tobacco" } },
  { sku = "BOOK-LUA", price = 799, categories = { "books" } },
}

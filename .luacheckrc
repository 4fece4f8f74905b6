std = "max"
max_line_length = 120
exclude_files = { "build/**" }
files["spec/**"] = { std = "+busted" }
-- Code that runs inside nginx sees the `ngx` global.
files["lua/loyalty/sandbox/**"] = { read_globals = { "ngx" } }
files["lua/loyalty/transport/ngx_*.lua"] = { read_globals = { "ngx" } }
files["lua/loyalty/ngx/**"] = { read_globals = { "ngx" } }
files["examples/openresty/**"] = { read_globals = { "ngx" } }
files["spec/support/**"] = { read_globals = { "ngx" } }

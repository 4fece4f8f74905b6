std = "max"
max_line_length = 120
exclude_files = { "build/**" }
files["spec/**"] = { std = "+busted" }
-- Code that runs inside nginx sees the `ngx` global (ngx.ctx and ngx.var are assigned to).
files["lua/loyalty/sandbox/**"] = { globals = { "ngx" } }
files["lua/loyalty/ngx/*.lua"] = { globals = { "ngx" } }
files["lua/loyalty/ngx/**"] = { globals = { "ngx" } }
files["examples/openresty/**"] = { globals = { "ngx" } }
files["spec/support/**"] = { globals = { "ngx" } }
files["spec/nginx/**"] = { globals = { "ngx" } }
files["bench/**"] = { globals = { "ngx" } }
-- Analysts' rule files and store settings are policy sheets: top-level names are their settings.
files["examples/rules/**"] = { allow_defined_top = true, ignore = { "131" } }
files["examples/store.conf.lua"] = { read_globals = { "env" } }
files["examples/crmcom.conf.lua"] = { read_globals = { "env" } }
files["examples/outbox.conf.lua"] = { read_globals = { "env" } }

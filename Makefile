# lua-loyalty: builds loyalty.core for Lua 5.4 and LuaJIT, runs the suites, the demo and the benches.
# LuaRocks drives the `lib` / `install-rock` targets with LUA_INCDIR, CFLAGS, LIBFLAG, INST_*DIR.

LUA54        ?= lua5.4
LUAJIT       ?= luajit
LUA54_INCDIR ?= /usr/include/lua5.4
LUAJIT_INCDIR?= /usr/include/luajit-2.1
BUSTED       ?= /usr/bin/busted
CC           ?= cc
CFLAGS       ?= -O2 -fPIC
LIBFLAG      ?= -shared
WARN         := -std=c99 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L
CURL_LIBS    ?= -lcurl
OPENSSL_LIBS ?= -lcrypto
ZLIB_LIBS    ?= -lz
LIBS         := $(CURL_LIBS) $(OPENSSL_LIBS) $(ZLIB_LIBS) -lsqlite3 -lm

CSRC := $(sort $(wildcard csrc/*.c))
CHDR := $(wildcard csrc/*.h)

CORE54 := build/5.4/loyalty/core.so
COREJIT := build/5.1/loyalty/core.so

LPATH := lua/?.lua;lua/?/init.lua;spec/?.lua
SPECS := spec

.PHONY: all deps test lint spec spec-5.4 spec-jit spec-valgrind spec-asan demo bench sandbox install clean lib install-rock sandbox-lib install-sandbox-rock rock-curl-check spec-rock

all: $(CORE54) $(COREJIT)

deps:
	@sh scripts/deps.sh

$(CORE54): $(CSRC) $(CHDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -I$(LUA54_INCDIR) $(CSRC) -o $@ $(LIBFLAG) $(LIBS)

$(COREJIT): $(CSRC) $(CHDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -I$(LUAJIT_INCDIR) $(CSRC) -o $@ $(LIBFLAG) $(LIBS)

test: deps all lint spec spec-valgrind spec-asan spec-rock

lint:
	luacheck -q lua bin/loyalty bin/loyalty-sandbox spec examples bench
	scripts/provider-leaks.sh

spec: spec-5.4 spec-jit

spec-5.4: $(CORE54)
	$(LUA54) $(BUSTED) --lpath='$(LPATH)' --cpath='build/5.4/?.so' $(SPECS)

spec-jit: $(COREJIT)
	$(LUAJIT) $(BUSTED) --lpath='$(LPATH)' --cpath='build/5.1/?.so' $(SPECS)

# The C core's own specs under valgrind: any leak or memory error fails the run.
spec-valgrind: $(CORE54)
	valgrind -q --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	  --suppressions=spec/support/valgrind.supp \
	  $(LUA54) $(BUSTED) --lpath='$(LPATH)' --cpath='build/5.4/?.so' spec/core spec/client/exchange_spec.lua spec/outbox/sqlite_core_spec.lua

# The C core under AddressSanitizer + UBSan: an instrumented build in build/asan, run by the
# (uninstrumented) lua5.4 with libasan preloaded; leaks are valgrind's job.
ASAN_CFLAGS := -O1 -g -fPIC -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
COREASAN := build/asan/loyalty/core.so
$(COREASAN): $(CSRC) $(CHDR)
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) $(WARN) -I$(LUA54_INCDIR) $(CSRC) -o $@ $(LIBFLAG) $(LIBS)

spec-asan: $(COREASAN)
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(LUA54) $(BUSTED) --lpath='$(LPATH)' --cpath='build/asan/?.so' spec/core spec/client/exchange_spec.lua spec/outbox/sqlite_core_spec.lua

# The main job: the sandbox plus one shopper's storefront flow, printed in plain words.
# PROVIDER=crmcom walks the CRM.COM Rewards POS flow instead.
PROVIDER ?= capillary
DEMO_capillary := examples/checkout.lua
DEMO_crmcom := examples/crmcom-checkout.lua
demo: deps all
	@test -n "$(DEMO_$(PROVIDER))" || { echo "make demo: unknown PROVIDER '$(PROVIDER)' (capillary or crmcom)"; exit 2; }
	$(LUA54) $(DEMO_$(PROVIDER))

# Speed targets live here, never in tests. Each script prints its figures and the target.
BENCHES := $(wildcard bench/client.lua bench/rules.lua bench/product_sync.lua bench/replay.lua)
bench: deps all
	@for b in $(BENCHES); do $(LUA54) $$b || exit 1; $(LUAJIT) $$b || exit 1; done
	@if [ -f bench/nginx.lua ]; then $(LUA54) bench/nginx.lua; fi

sandbox: deps all
	$(LUA54) bin/loyalty sandbox

# Both rocks for both VMs, offline, into throwaway trees, used from / with an empty environment.
spec-rock:
	@sh scripts/rock-check.sh

clean:
	rm -rf build

# --- LuaRocks (build.type = "make") ------------------------------------------------------
# Two rocks: lua-loyalty (the module, `loyalty`, rule tools, outbox) and lua-loyalty-sandbox (the
# sandbox CRM, its seed, loyalty.ngx.runner, `loyalty-sandbox`, and a loyalty.core built for nginx's
# LuaJIT). LuaRocks passes LUA_INCDIR, CFLAGS, LIBFLAG, the CURL/OPENSSL/SQLITE3 dirs and INST_*.
# Users' builds warn but do not stop on warnings; `make all`/`make test` keep -Werror.
ROCK_WARN := -std=c99 -Wall -Wextra -D_POSIX_C_SOURCE=200809L
LUA_INCDIR ?= $(LUA54_INCDIR)
CURL_INCDIR ?= /usr/include
OPENSSL_INCDIR ?= /usr/include
SQLITE3_INCDIR ?= /usr/include
ZLIB_INCDIR ?= /usr/include
LUAJIT_INCDIR_ROCK ?= $(LUAJIT_INCDIR)
INST_LIBDIR ?= /usr/local/lib/lua/5.4
INST_LUADIR ?= /usr/local/share/lua/5.4
INST_BINDIR ?= /usr/local/bin
INST_PREFIX ?= /usr/local/share/lua-loyalty

# Debian keeps curl/curl.h under the multiarch include dir (/usr/include/x86_64-linux-gnu).
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
CURL_H := $(firstword $(wildcard $(CURL_INCDIR)/curl/curl.h $(CURL_INCDIR)/$(MULTIARCH)/curl/curl.h))
ROCK_INC = -I$(patsubst %/curl/curl.h,%,$(CURL_H)) -I$(OPENSSL_INCDIR) -I$(SQLITE3_INCDIR) -I$(ZLIB_INCDIR)
ROCK_LIBS := -lcurl -lcrypto -lz -lsqlite3 -lm

# Modules of each rock; X/init.lua installs as X.lua (module X, not X.init).
SANDBOX_MODULES := loyalty/sandbox loyalty/ngx/runner.lua loyalty/cli/sandbox.lua
PRODUCT_FIND := loyalty ! -path 'loyalty/sandbox/*' ! -path loyalty/ngx/runner.lua ! -path loyalty/cli/sandbox.lua
define install_modules
	cd lua && for f in $$(find $(1) -name '*.lua' | sort); do \
	  case "$$f" in */init.lua) d="$${f%/init.lua}.lua";; *) d="$$f";; esac; \
	  mkdir -p "$(INST_LUADIR)/$$(dirname "$$d")" && cp "$$f" "$(INST_LUADIR)/$$d" || exit 1; \
	done
endef

rock-curl-check:
	@test -n "$(CURL_H)" || { echo "curl/curl.h is not under CURL_INCDIR=$(CURL_INCDIR) (nor its $(MULTIARCH) subdirectory): install libcurl4-openssl-dev or pass CURL_INCDIR=DIR"; exit 1; }

lib: rock-curl-check $(CSRC) $(CHDR)
	@mkdir -p build/rock/loyalty
	$(CC) $(CFLAGS) $(ROCK_WARN) -I$(LUA_INCDIR) $(ROCK_INC) $(CSRC) -o build/rock/loyalty/core.so $(LIBFLAG) $(ROCK_LIBS)

install-rock:
	mkdir -p $(INST_LIBDIR)/loyalty $(INST_LUADIR) $(INST_BINDIR) $(INST_PREFIX)/examples
	cp build/rock/loyalty/core.so $(INST_LIBDIR)/loyalty/core.so
	$(call install_modules,$(PRODUCT_FIND))
	cp bin/loyalty $(INST_BINDIR)/loyalty
	cp -R examples/rules $(INST_PREFIX)/examples/
	cp examples/store.conf.lua examples/crmcom.conf.lua examples/outbox.conf.lua $(INST_PREFIX)/examples/

# The sandbox's nginx runs LuaJIT whatever the tree's Lua: its own loyalty.core, in the rock's directory.
sandbox-lib: rock-curl-check $(CSRC) $(CHDR)
	@test -f "$(LUAJIT_INCDIR_ROCK)/luajit.h" || { echo "luajit.h is not in $(LUAJIT_INCDIR_ROCK): install libluajit2-5.1-dev or pass LUAJIT_INCDIR=DIR"; exit 1; }
	@mkdir -p build/rock-sandbox/luajit/loyalty
	$(CC) $(CFLAGS) $(ROCK_WARN) -I$(LUAJIT_INCDIR_ROCK) $(ROCK_INC) $(CSRC) -o build/rock-sandbox/luajit/loyalty/core.so $(LIBFLAG) $(ROCK_LIBS)

install-sandbox-rock:
	mkdir -p $(INST_LUADIR) $(INST_BINDIR) $(INST_PREFIX)/examples $(INST_PREFIX)/luajit/loyalty
	$(call install_modules,$(SANDBOX_MODULES))
	cp bin/loyalty-sandbox $(INST_BINDIR)/loyalty-sandbox
	cp examples/sandbox-seed.json $(INST_PREFIX)/examples/
	cp build/rock-sandbox/luajit/loyalty/core.so $(INST_PREFIX)/luajit/loyalty/core.so

install: deps
	luarocks --lua-version 5.4 make --deps-mode=none lua-loyalty-0.1.0-1.rockspec
	luarocks --lua-version 5.4 make --deps-mode=none sandbox-rock/lua-loyalty-sandbox-0.1.0-1.rockspec

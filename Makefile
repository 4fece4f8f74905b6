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

.PHONY: all deps test lint spec spec-5.4 spec-jit spec-valgrind spec-asan demo bench sandbox install clean lib install-rock spec-rock

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
	luacheck -q lua bin spec examples bench

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
BENCHES := $(wildcard bench/client.lua bench/rules.lua bench/product_sync.lua)
bench: deps all
	@for b in $(BENCHES); do $(LUA54) $$b || exit 1; $(LUAJIT) $$b || exit 1; done
	@if [ -f bench/nginx.lua ]; then $(LUA54) bench/nginx.lua; fi

sandbox: deps all
	$(LUA54) bin/loyalty sandbox

# The rockspec installs a working module for both VMs, offline, into a throwaway tree.
spec-rock:
	@t=$$(mktemp -d) && trap 'rm -rf "$$t"' EXIT && \
	luarocks --lua-version 5.4 make --deps-mode=none --tree "$$t/54" >/dev/null 2>&1 && \
	LUA_PATH="$$t/54/share/lua/5.4/?.lua;$$t/54/share/lua/5.4/?/init.lua;;" LUA_CPATH="$$t/54/lib/lua/5.4/?.so;;" \
	  $(LUA54) -e 'assert(require("loyalty.core").basic_auth("a","b")); assert(require("loyalty").client)' && \
	luarocks --lua-version 5.1 make --deps-mode=none --tree "$$t/51" LUA_INCDIR=$(LUAJIT_INCDIR) >/dev/null 2>&1 && \
	LUA_PATH="$$t/51/share/lua/5.1/?.lua;$$t/51/share/lua/5.1/?/init.lua;;" LUA_CPATH="$$t/51/lib/lua/5.1/?.so;;" \
	  $(LUAJIT) -e 'assert(require("loyalty.core").basic_auth("a","b")); assert(require("loyalty").client)' && \
	echo "luarocks make: Lua 5.4 and LuaJIT installs load"

clean:
	rm -rf build

# --- LuaRocks (build.type = "make") ------------------------------------------------------
LUA_INCDIR ?= $(LUA54_INCDIR)
INST_LIBDIR ?= /usr/local/lib/lua/5.4
INST_LUADIR ?= /usr/local/share/lua/5.4
INST_BINDIR ?= /usr/local/bin

lib: $(CSRC) $(CHDR)
	@mkdir -p build/rock/loyalty
	$(CC) $(CFLAGS) $(WARN) -I$(LUA_INCDIR) $(CSRC) -o build/rock/loyalty/core.so $(LIBFLAG) $(LIBS)

install-rock:
	mkdir -p $(INST_LIBDIR)/loyalty $(INST_LUADIR) $(INST_BINDIR)
	cp build/rock/loyalty/core.so $(INST_LIBDIR)/loyalty/core.so
	cp -R lua/loyalty $(INST_LUADIR)/
	cp bin/loyalty $(INST_BINDIR)/loyalty

install: deps
	luarocks --lua-version 5.4 make

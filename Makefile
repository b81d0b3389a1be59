# Builds ngx_http_cart_module as a dynamic module against Debian's nginx
# (package nginx-dev), the Debian way: conf_flags + configure + make modules.

SHELL       := /bin/bash
NGINX_SRC   ?= /usr/share/nginx/src
TOP         := $(abspath .)
BUILDDIR    ?= $(TOP)/build/nginx
MODULE_SO   := $(BUILDDIR)/ngx_http_cart_module.so

UNITDIR     := $(TOP)/build/unit/nginx
UNIT_SO     := $(UNITDIR)/ngx_cart_engine_test_module.so

SOURCES := config $(wildcard ngx_http_cart_module.c src/*.c src/*.h \
                             src/lua/*.lua src/lua/embed.sh)

NGINX_DEV = @test -d $(NGINX_SRC) \
	|| { echo "nginx-dev is not installed: run 'make deps'"; exit 1; }

.PHONY: all build clean daemon unit unit-build

all: build

build: $(MODULE_SO) daemon

# configure is re-run whenever config or a Lua script changes: the scripts
# are compiled into a generated header at configure time.
$(BUILDDIR)/Makefile: config $(wildcard src/lua/*.lua) src/lua/embed.sh
	$(NGINX_DEV)
	mkdir -p $(BUILDDIR)
	cd $(NGINX_SRC) && . ./conf_flags && \
	  ./configure "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(TOP) \
	    --builddir=$(BUILDDIR) --with-cc-opt="-Wall -Werror -g -O2"

$(MODULE_SO): $(BUILDDIR)/Makefile $(SOURCES)
	$(MAKE) -f $(BUILDDIR)/Makefile -C $(NGINX_SRC) modules

# The engine's unit tests (t/unit/engine_test.c): a core module that
# /usr/sbin/nginx runs while it reads t/unit/engine.conf, so that the
# engine runs on nginx's own pools (nginx-dev has no .c files to link).
# t/005-engine.t runs it with the suite; "make unit" builds and runs it.
unit: unit-build
	/usr/sbin/nginx -q -t -p $(TOP)/ -e stderr -c t/unit/engine.conf

unit-build: $(UNIT_SO)

$(UNITDIR)/Makefile: t/unit/config
	$(NGINX_DEV)
	mkdir -p $(UNITDIR)
	cd $(NGINX_SRC) && . ./conf_flags && \
	  ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(TOP)/t/unit \
	    --builddir=$(UNITDIR) --with-cc-opt="-Wall -Werror -g -O2"

$(UNIT_SO): $(UNITDIR)/Makefile t/unit/engine_test.c \
            src/ngx_http_cart_engine.c src/ngx_http_cart_engine.h
	$(MAKE) -f $(UNITDIR)/Makefile -C $(NGINX_SRC) modules

clean:
	rm -rf build

# The companion daemon (daemon/) and the test broker (tools/kafka-mock/).
daemon:
	$(MAKE) -C daemon BUILDDIR=$(TOP)/build/daemon
	$(MAKE) -C tools/kafka-mock BUILDDIR=$(TOP)/build/tools

# --- Developer commands (scripts in util/; see their headers) --------------
# TESTS=t/010-items.t limits `make test*` to some files (default: all of t/).
.PHONY: deps test test-valgrind test-hup drills run stop bench

deps:
	util/deps.sh

test:
	util/test.sh $(TESTS)

test-valgrind:
	VALGRIND=1 util/test.sh $(TESTS)

test-hup:
	HUP=1 util/test.sh $(TESTS)

# the fault drills alone (t/5xx-drill-*.t, also part of `make test`);
# the table of their results: build/drills.md
drills:
	util/test.sh $(sort $(wildcard t/5??-drill-*.t))

run:
	util/run.sh start

stop:
	util/run.sh stop

# bench/run.sh: its own Redis and nginx, wrk, redis-benchmark; one table per
# section. SECTIONS=main limits it (main redis trips growth memory).
bench:
	bench/run.sh $(SECTIONS)

# Builds ngx_http_cart_module as a dynamic module against Debian's nginx
# (package nginx-dev), the Debian way: conf_flags + configure + make modules.

SHELL       := /bin/bash
NGINX_SRC   ?= /usr/share/nginx/src
TOP         := $(abspath .)
BUILDDIR    ?= $(TOP)/build/nginx
MODULE_SO   := $(BUILDDIR)/ngx_http_cart_module.so

UNITDIR     ?= $(TOP)/build/unit/nginx
UNIT_SO     := $(UNITDIR)/ngx_cart_engine_test_module.so

# the compiler and its options given to nginx's configure (the ASan build
# below passes its own; a build directory keeps those it was configured
# with); an empty NGX_CC is configure's default, cc
NGX_CC      ?=
CC_OPT      ?= -Wall -Werror -g -O2
LD_OPT      ?=
NGX_CONFIGURE = ./configure "$${NGX_CONF_FLAGS[@]}" \
	    $(if $(NGX_CC),--with-cc=$(NGX_CC)) --with-cc-opt="$(CC_OPT)" \
	    --with-ld-opt="$(LD_OPT)"

# The AddressSanitizer + UndefinedBehaviorSanitizer build (make test-asan),
# everything in build/asan/: clang, whose shared ASan runtime (preloaded
# into /usr/sbin/nginx, see util/test.sh) has UBSan's handlers too, so that
# both report alike (gcc's libubsan ignores log_path beside libasan);
# cartd links the runtime statically. The rpath: configure runs the
# programs it builds. The private aliases: a module defines ngx_modules,
# as nginx does, and without them ASan would take nginx's array, which the
# module's symbol resolves to, for the module's and put its red zone there.
ASAN_DIR    := $(TOP)/build/asan
ASAN_RT      = $(shell clang -print-file-name=libclang_rt.asan-x86_64.so)
SAN_FLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_VARS    = NGX_CC=clang \
               CC_OPT="-Wall -Werror -g -O1 $(SAN_FLAGS) -shared-libsan \
                       -mllvm -asan-use-private-alias=1" \
               LD_OPT="$(SAN_FLAGS) -shared-libsan \
                       -Wl,-rpath,$(dir $(ASAN_RT))"

SOURCES := config $(wildcard ngx_http_cart_module.c src/*.c src/*.h \
                             src/lua/*.lua src/lua/embed.sh)

NGINX_DEV = @test -d $(NGINX_SRC) \
	|| { echo "nginx-dev is not installed: run 'make deps'"; exit 1; }

.PHONY: all build clean daemon unit unit-build build-asan unit-build-asan

all: build

build: $(MODULE_SO) daemon

# configure is re-run whenever config or a Lua script changes: the scripts
# are compiled into a generated header at configure time.
$(BUILDDIR)/Makefile: config $(wildcard src/lua/*.lua) src/lua/embed.sh
	$(NGINX_DEV)
	mkdir -p $(BUILDDIR)
	cd $(NGINX_SRC) && . ./conf_flags && \
	  $(NGX_CONFIGURE) --add-dynamic-module=$(TOP) --builddir=$(BUILDDIR)

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
	  $(NGX_CONFIGURE) --add-dynamic-module=$(TOP)/t/unit \
	    --builddir=$(UNITDIR)

$(UNIT_SO): $(UNITDIR)/Makefile t/unit/engine_test.c \
            src/ngx_http_cart_engine.c src/ngx_http_cart_engine.h
	$(MAKE) -f $(UNITDIR)/Makefile -C $(NGINX_SRC) modules

# The module, the engine's unit test module and cartd with ASan + UBSan,
# for make test-asan: build/asan/nginx/, build/asan/unit/, build/asan/daemon/.
build-asan: unit-build-asan
	$(MAKE) BUILDDIR=$(ASAN_DIR)/nginx $(ASAN_VARS) \
	    $(ASAN_DIR)/nginx/ngx_http_cart_module.so
	$(MAKE) -C daemon BUILDDIR=$(ASAN_DIR)/daemon CC=clang \
	    CFLAGS="-Wall -Werror -g -O1 $(SAN_FLAGS)"
	$(MAKE) -C tools/kafka-mock BUILDDIR=$(TOP)/build/tools

unit-build-asan:
	$(MAKE) UNITDIR=$(ASAN_DIR)/unit $(ASAN_VARS) unit-build

clean:
	rm -rf build

# The companion daemon (daemon/) and the test broker (tools/kafka-mock/).
daemon:
	$(MAKE) -C daemon BUILDDIR=$(TOP)/build/daemon
	$(MAKE) -C tools/kafka-mock BUILDDIR=$(TOP)/build/tools

# --- Developer commands (scripts in util/; see their headers) --------------
# TESTS=t/010-items.t limits `make test*` to some files (default: all of t/).
.PHONY: deps test test-valgrind test-asan test-hup drills fuzz run stop bench

deps:
	util/deps.sh

test:
	util/test.sh $(TESTS)

test-valgrind:
	VALGRIND=1 util/test.sh $(TESTS)

test-asan:
	ASAN=1 util/test.sh $(TESTS)

# libFuzzer harnesses (fuzz/), each run FUZZ_SECONDS; FUZZ=json limits them
FUZZ_SECONDS ?= 60

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) util/fuzz.sh $(FUZZ)

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

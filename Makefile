# iotad: build, demo, test. Every target installs what it lacks (Debian / Raspberry Pi OS).
#   make demo   synthesize a home network with attacks, replay it, show what was found
#   make test   the whole suite: format, lints, unit and integration tests
#   make bench  speed and memory on this machine

SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/iotad
DEMO_DIR := target/demo
# Debian packages the build and the tests need; checked with dpkg, installed with apt-get.
DEB_PACKAGES := libpcap-dev pkg-config gcc ieee-data
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps rust demo test lint bench clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@$(MAKE) --no-print-directory rust

rust:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "cargo not found: install Rust with rustup (https://rustup.rs), then run make again" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy

build: deps
	$(CARGO) build --release --locked

demo: build
	@mkdir -p $(DEMO_DIR)
	$(BIN) synth --out $(DEMO_DIR)/home.pcap --seed 1 --duration 1800 --devices 6 \
	  --attack portscan@600:02:10:00:00:00:00 \
	  --attack dns-tunnel@900:02:10:03:00:00:03 \
	  --attack telnet-brute@1200:02:10:02:00:00:02
	$(BIN) replay $(DEMO_DIR)/home.pcap
	$(BIN) features $(DEMO_DIR)/home.pcap --out $(DEMO_DIR)/windows.csv --stats
	@echo
	@echo "windows where a device did something unusual (columns: mac, window, remote_ports, login_attempts, dns_name_len_mean):"
	@awk -F, 'NR==1 { for (i = 1; i <= NF; i++) col[$$i] = i; next } \
	  $$col["remote_ports"] > 100 || $$col["login_attempts"] > 5 || $$col["dns_name_len_mean"] > 50 { \
	    print "  " $$2, $$3, $$col["remote_ports"], $$col["login_attempts"], $$col["dns_name_len_mean"] }' \
	  $(DEMO_DIR)/windows.csv | head -20

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test: lint
	@[ -f ../shared/data/MANIFEST.json ] || \
	  echo "*** SKIPPED: no ../shared/data/MANIFEST.json: the real-capture test will not run ***"
	$(CARGO) test --locked

bench: build
	$(BIN) bench

clean:
	$(CARGO) clean

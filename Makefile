# iotad: build, demo, test. Every target installs what it lacks (Debian / Raspberry Pi OS).
#   make demo   synthesize a home network with attacks, replay it, show what was found
#   make test   the whole suite: format, lints, unit and integration tests
#   make bench  speed and memory on this machine
#   make variants  detection on variants of ../shared/data's scenarios (other starts, other attackers)
#   make readme-eval  regenerate the README's evaluation table from `iotad eval --markdown`
#   make aarch64       the fully static Raspberry Pi binary (aarch64-unknown-linux-musl)
#   make test-aarch64  its unit tests and an end-to-end replay under qemu-user
#   make screenshot  the status page of a synthesized network in headless Chromium (README's pictures)
#   make deploy PI=user@host     install it on a Pi over ssh as a hardened service (BIN= a binary)
#   make uninstall PI=user@host  remove what deploy installed

SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/iotad
DEMO_DIR := target/demo
# Debian packages the build and the tests need; checked with dpkg, installed with apt-get.
DEB_PACKAGES := libpcap-dev pkg-config gcc ieee-data
# What the tests add: veth pairs and packet injection for the live daemon (iproute2,
# tcpreplay), editcap/mergecap and python3 for the variants of the shared scenarios, a broker
# and its clients for the MQTT test (mosquitto, mosquitto-clients; openssl makes its TLS
# certificates), an SMTP server for the email test (python3-aiosmtpd), systemd-analyze for the
# unit's test (systemd), sshd and ssh/scp for the deploy test (openssh-server, openssh-client).
TEST_DEB_PACKAGES := iproute2 tcpreplay wireshark-common python3 mosquitto mosquitto-clients openssl \
  python3-aiosmtpd systemd openssh-server openssh-client prometheus
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The Pi build: static musl binary, static libpcap from Debian's source package.
AARCH64 := aarch64-unknown-linux-musl
AARCH64_BIN := target/$(AARCH64)/release/iotad
PCAP_SRC := target/libpcap/src
PCAP_PREFIX := target/libpcap/$(AARCH64)
AARCH64_DEB_PACKAGES := gcc-aarch64-linux-gnu musl-dev:arm64 linux-libc-dev-arm64-cross \
  qemu-user flex bison make dpkg-dev file
AARCH64_ENV = LIBPCAP_LIBDIR=$(CURDIR)/$(PCAP_PREFIX)/lib LIBPCAP_VER=$$(cat $(PCAP_PREFIX)/VERSION) $(AARCH64_RUSTFLAGS)
# `make aarch64 PI5=1` tunes for the Raspberry Pi 5's Cortex-A76; the default runs on any aarch64.
AARCH64_RUSTFLAGS := $(if $(PI5),RUSTFLAGS="-C target-cpu=cortex-a76",)

# `make model`: the default model, from captures the synthesizer generates (six networks of
# eight devices, six hours each: 103,680 windows). Each capture is turned into feature windows
# and deleted at once, so the disk holds one capture at a time. Training writes the f32
# safetensors model; the built-in one is its Q8_0 GGUF (rebuild iotad to embed a new one).
# `make model-real`: the same windows and the real benign captures of ../shared/data
# (MODEL_REAL: every capture the manifest calls benign, named benign_*), trained from scratch
# and fine-tuned from the default model, each evaluated on ../shared/data (models/README.md
# says why neither is shipped yet).
MODEL_F32 := models/iotad.safetensors
MODEL := models/iotad.gguf
MODEL_SEEDS := 11 12 13 14 15 16
MODEL_DIR := target/model
MODEL_REAL := $(sort $(wildcard ../shared/data/benign_*.pcap ../shared/data/benign_*.pcapng))

.PHONY: all build deps test-deps rust demo test lint bench variants readme-eval clean model model-real aarch64 aarch64-deps libpcap-aarch64 test-aarch64 deploy uninstall screenshot

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@$(MAKE) --no-print-directory rust

test-deps: deps
	@missing=""; for p in $(TEST_DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

rust:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "cargo not found: install Rust with rustup (https://rustup.rs), then run make again" >&2; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy

build: deps
	$(CARGO) build --release --locked

demo: build
	@mkdir -p $(DEMO_DIR)
	$(BIN) synth --out $(DEMO_DIR)/home.pcap --seed 1 --duration 5400 --devices 6 \
	  --attack portscan@3900:02:10:00:00:00:00 \
	  --attack dns-tunnel@4200:02:10:03:00:00:03 \
	  --attack telnet-brute@4500:02:10:02:00:00:02
	@echo "the replay: its learning period (the first hour), its alerts and every device found"
	$(BIN) replay $(DEMO_DIR)/home.pcap
	$(BIN) features $(DEMO_DIR)/home.pcap --out $(DEMO_DIR)/windows.csv --stats
	@echo
	@echo "windows where a device did something unusual (columns: mac, window, remote_ports, login_attempts, dns_name_len_mean):"
	@awk -F, 'NR==1 { for (i = 1; i <= NF; i++) col[$$i] = i; next } \
	  $$col["remote_ports"] > 100 || $$col["login_attempts"] > 5 || $$col["dns_name_len_mean"] > 50 { \
	    print "  " $$2, $$3, $$col["remote_ports"], $$col["login_attempts"], $$col["dns_name_len_mean"] }' \
	  $(DEMO_DIR)/windows.csv | head -20

model: build
	@mkdir -p $(MODEL_DIR)
	@for s in $(MODEL_SEEDS); do \
	  $(BIN) synth --out $(MODEL_DIR)/net-$$s.pcap --seed $$s --duration 21600 --devices 8 && \
	  $(BIN) features $(MODEL_DIR)/net-$$s.pcap --out $(MODEL_DIR)/net-$$s.csv && \
	  rm -f $(MODEL_DIR)/net-$$s.pcap || exit 1; done
	$(BIN) train $(foreach s,$(MODEL_SEEDS),--csv $(MODEL_DIR)/net-$(s).csv) --seed 1 --out $(MODEL_F32)
	$(BIN) quantize --model $(MODEL_F32) --out $(MODEL)
	@ls -l $(MODEL_F32) $(MODEL)

REAL_CSVS = $(foreach c,$(MODEL_REAL),--csv $(MODEL_DIR)/real-$(basename $(notdir $(c))).csv)
model-real: model
	@for c in $(MODEL_REAL); do n=$$(basename $${c%.*}); \
	  $(BIN) features $$c --out $(MODEL_DIR)/real-$$n.csv || exit 1; done
	$(BIN) train $(foreach s,$(MODEL_SEEDS),--csv $(MODEL_DIR)/net-$(s).csv) $(REAL_CSVS) \
	  --seed 1 --out $(MODEL_DIR)/real.safetensors
	$(BIN) train --base $(MODEL_F32) $(foreach s,$(MODEL_SEEDS),--csv $(MODEL_DIR)/net-$(s).csv) \
	  $(REAL_CSVS) --seed 1 --out $(MODEL_DIR)/real-finetuned.safetensors
	@for m in $(MODEL) $(MODEL_DIR)/real.safetensors $(MODEL_DIR)/real-finetuned.safetensors; do \
	  echo "== $$m"; $(BIN) eval -m $$m $(SHARED_DATA)/MANIFEST.json | tail -3; done

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test: lint test-deps
	@[ -f ../shared/data/MANIFEST.json ] || \
	  echo "*** SKIPPED: no ../shared/data/MANIFEST.json: the real-capture test will not run ***"
	$(CARGO) test --locked --no-fail-fast

bench: build
	$(BIN) bench

# `make screenshot`: tests/screenshots/{phone,desktop}.png, the status page with anomalies
# (root: a veth pair; Debian's chromium renders it).
screenshot: build test-deps
	@dpkg -s chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	tests/screenshot.sh

# `make variants`: the shared scenarios' attacks replayed from new devices at two start times,
# and from a compromised camera and lock hub, each set evaluated (see tests/variants.py).
SHARED_DATA ?= ../shared/data
VARIANTS_DIR := target/variants
variants: build
	@command -v editcap >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wireshark-common python3; }
	python3 tests/variants.py $(SHARED_DATA) $(VARIANTS_DIR)
	$(BIN) eval $(VARIANTS_DIR)/new/MANIFEST.json
	$(BIN) eval $(VARIANTS_DIR)/known/MANIFEST.json

# `make readme-eval`: the README's evaluation table (between its eval-table markers) from
# `iotad eval --markdown` on all of ../shared/data, with the date and the model's name.
readme-eval: build
	@[ -f $(SHARED_DATA)/MANIFEST.json ] || { echo "no $(SHARED_DATA)/MANIFEST.json" >&2; exit 1; }
	$(BIN) eval --markdown $(SHARED_DATA)/MANIFEST.json > target/eval-table.md
	@awk -v f=target/eval-table.md 'BEGIN { while ((getline l < f) > 0) t = t l "\n" } \
	  /^<!-- eval-table begin/ { print; printf "%s", t; skip = 1; next } \
	  /^<!-- eval-table end/ { skip = 0 } !skip' README.md > target/README.md.new
	@grep -q '^<!-- eval-table end' target/README.md.new || { echo "README.md has no eval-table markers" >&2; exit 1; }
	@mv target/README.md.new README.md
	@echo "README.md: evaluation table regenerated"

clean:
	$(CARGO) clean

aarch64-deps: deps
	@dpkg --print-foreign-architectures | grep -qx arm64 || $(SUDO) dpkg --add-architecture arm64
	@grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ || grep -qs '^deb-src' /etc/apt/sources.list || { \
	  echo "adding a deb-src entry (for libpcap's source package)"; \
	  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
	    "$$(. /etc/os-release && echo $$VERSION_CODENAME)" | $(SUDO) tee /etc/apt/sources.list.d/iotad-deb-src.sources >/dev/null; \
	  $(SUDO) apt-get update -qq; }
	@missing=""; for p in $(AARCH64_DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@rustup target list --installed | grep -qx $(AARCH64) || rustup target add $(AARCH64)

libpcap-aarch64: aarch64-deps
	@if [ ! -f $(PCAP_PREFIX)/lib/libpcap.a ]; then \
	  mkdir -p $(PCAP_SRC) && cd $(PCAP_SRC) && \
	  { ls libpcap_*.orig.tar.gz >/dev/null 2>&1 || apt-get source --download-only libpcap; }; \
	fi
	@cross/libpcap.sh "$$(ls $(PCAP_SRC)/libpcap_*.orig.tar.gz | head -1)" aarch64-linux-musl aarch64-linux-musl-gcc \
	  $(PCAP_PREFIX) /usr/aarch64-linux-gnu/include

aarch64: libpcap-aarch64
	$(AARCH64_ENV) $(CARGO) build --release --locked --target $(AARCH64)
	@file $(AARCH64_BIN)
	@ls -l $(AARCH64_BIN) | awk '{ printf "size: %d bytes (%.2f MB)\n", $$5, $$5 / 1048576 }'

test-aarch64: aarch64 build
	@echo "unit tests of the aarch64 build, under qemu-aarch64:"
	$(AARCH64_ENV) $(CARGO) test --locked --target $(AARCH64) --lib
	@echo "end to end: the aarch64 binary under qemu against the native one:"
	tests/cross_arch.sh $(BIN) "qemu-aarch64 $(AARCH64_BIN)"
	@echo "note: live capture is not exercised under qemu-user: it does not emulate the ethtool"
	@echo "      ioctls libpcap uses on a live interface; live capture is tested natively."

# `make deploy PI=user@host`: the static aarch64 binary (built unless BIN= names one, e.g. when
# the cross toolchain is missing here), the unit and a default configuration, installed over
# ssh and started (deploy/pi.sh). ROOT= installs under a prefix; SSH_OPTS= passes ssh options.
DEPLOY_BIN = $(if $(filter command line environment,$(origin BIN)),$(BIN),$(AARCH64_BIN))
deploy:
	@[ -n "$(PI)" ] || { echo "usage: make deploy PI=user@host [BIN=path] [ROOT=/prefix]" >&2; exit 2; }
	@$(if $(filter command line environment,$(origin BIN)),true,$(MAKE) --no-print-directory aarch64)
	deploy/pi.sh install PI="$(PI)" BIN="$(DEPLOY_BIN)" ROOT="$(ROOT)" SSH_OPTS="$(SSH_OPTS)"

uninstall:
	@[ -n "$(PI)" ] || { echo "usage: make uninstall PI=user@host [ROOT=/prefix]" >&2; exit 2; }
	deploy/pi.sh uninstall PI="$(PI)" ROOT="$(ROOT)" SSH_OPTS="$(SSH_OPTS)"

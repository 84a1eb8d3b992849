# oisp-sensor: set-up, build and test. Works on a fresh Debian 12 machine as root.
#   make record   install everything, build the BPF object, run `oisp-sensor record`
#   make test     install everything, then run the whole test suite (needs root)
#   make image-test  build the container image (deploy/build-image.sh) and run it for real

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := clang llvm libbpf-dev libbpf1 bpftool iproute2 curl jq gnutls-bin nodejs npm golang-go chromium logrotate strace
BPF_OBJ := src/oisp_sensor/bpf/oisp.bpf.o
BPF_SRC := bpf/oisp.bpf.c bpf/oisp_records.h bpf/oisp_go_tls.bpf.h
NODE_CLIENTS := tests/clients/node
RECORD_ARGS ?=
PYTEST_ARGS ?=

.PHONY: all setup deps venv bpf node-deps record test image-test lint unit e2e bench clean

all: setup

setup: deps venv bpf

# Debian packages, installed only when missing (apt-get update once, first).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  if [ "$$p" = nodejs ] || [ "$$p" = npm ]; then command -v $${p/nodejs/node} >/dev/null && continue; fi; \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

bpf: $(BPF_OBJ)

bpf/vmlinux.h:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BPF_OBJ): $(BPF_SRC) bpf/vmlinux.h
	mkdir -p $(dir $@)
	clang -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I bpf -c bpf/oisp.bpf.c -o $@

node-deps: $(NODE_CLIENTS)/node_modules/.installed

$(NODE_CLIENTS)/node_modules/.installed: $(NODE_CLIENTS)/package.json $(NODE_CLIENTS)/package-lock.json
	cd $(NODE_CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

record: setup
	$(BIN)/oisp-sensor record $(RECORD_ARGS)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test: setup node-deps lint
	$(BIN)/pytest -m "not image" $(PYTEST_ARGS)

# slow (the image build takes minutes), so not part of `make test`; needs podman
IMAGE_PACKAGES := podman runc mmdebstrap

image-test: setup
	@missing=""; for p in $(IMAGE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	$(BIN)/pytest -m image tests/e2e/test_container_image.py $(PYTEST_ARGS)

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

bench: setup node-deps
	$(BIN)/python bench/bench_openai_loop.py

clean:
	rm -rf $(VENV) bpf/vmlinux.h $(BPF_OBJ) $(NODE_CLIENTS)/node_modules .pytest_cache .ruff_cache

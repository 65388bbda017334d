# ClearPath: build, test and demo. Run as root on Debian 12 (the tests and
# the demo build network namespaces). `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# sudo resets PATH; Go's default install location keeps working anyway.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go

# Commands that build without cgo (the tray, when it comes, needs cgo).
CMDS := ./cmd/vpn ./cmd/vpn-gateway
# go test timeout; the whole suite takes a few minutes on 2 cores.
TEST_TIMEOUT ?= 20m
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: help build dex deps test demo bench lint fmt-check vet cross clean distclean

help:
	@echo "make build   build vpn and vpn-gateway into bin/ (CGO_ENABLED=0)"
	@echo "make dex     build the Dex identity provider used by tests into bin/dex"
	@echo "make deps    install the Debian packages tests and demo need (only missing ones)"
	@echo "make test    deps + dex + build + gofmt + vet + every test, end-to-end included (root)"
	@echo "make demo    run gateway, Dex and client in network namespaces, narrated (root)"
	@echo "make bench   ClearPath vs wireguard-go vs OpenVPN side by side, Go benchmarks (root, ~12 min)"
	@echo "make lint    gofmt, go vet and staticcheck"
	@echo "make cross   cross-compile the client for macOS (arm64, amd64)"
	@echo "make clean   remove built binaries and artifacts (keeps bin/dex; distclean removes it)"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(CMDS)

# Dex needs cgo for its sqlite3 storage; a cold build takes a few minutes.
dex: bin/dex
bin/dex: tools/go.mod tools/go.sum
	cd tools && CGO_ENABLED=1 $(GO) build -o ../bin/dex github.com/dexidp/dex/cmd/dex
	@touch $@

deps:
	@scripts/deps.sh

fmt-check:
	@out="$$(gofmt -l $$(find . -name '*.go' -not -path './tmpdeps/*' -not -path './.git/*'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test: deps dex build fmt-check vet
	@if [ "$$(id -u)" -ne 0 ]; then echo "WARNING: not root: namespace and end-to-end tests will skip"; fi
	@rm -f artifacts/vpn-up.txt
	@start=$$(date +%s); rc=0; \
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./... || rc=$$?; \
	echo "make test: go test took $$(( $$(date +%s) - start ))s"; exit $$rc
	@cat artifacts/vpn-up.txt 2>/dev/null || true

# DEMO_FLAGS="-pause 2s -user erin" to present it slowly or as someone else.
demo: deps dex build
	$(GO) run ./internal/lab/cmd/demo $(DEMO_FLAGS)

# The tunnel comparison and the Go benchmarks (bench/run.sh); not part of
# `make test`. BENCH_FLAGS="-rounds 5 -t 10s" passes flags to tunnelbench.
bench: deps dex build bin/wireguard-go
	bench/run.sh

# The reference wireguard-go: the module's own main package at exactly the
# version go.mod pins, built the same way as ours.
bin/wireguard-go: go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ golang.zx2c4.com/wireguard

lint: fmt-check vet
	$(GO) run $(STATICCHECK) ./...

# The gateway is a Linux server (netlink, policy routing); the client is
# what runs on developers' Macs.
cross:
	for arch in arm64 amd64; do \
		CGO_ENABLED=0 GOOS=darwin GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/darwin-$$arch/ ./cmd/vpn; \
	done
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-arm64/ $(CMDS)

clean:
	rm -rf bin/vpn bin/vpn-gateway bin/darwin-* bin/linux-* artifacts

distclean: clean
	rm -rf bin

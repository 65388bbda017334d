# ClearPath: build, test and demo. Run as root on Debian 12 (the tests and
# the demo build network namespaces). `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# sudo resets PATH; Go's default install location keeps working anyway.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go

# Commands that build without cgo (the tray needs cgo: `make tray`).
CMDS := ./cmd/vpn ./cmd/vpn-gateway
# go test timeout; the whole suite takes a few minutes on 2 cores.
TEST_TIMEOUT ?= 20m
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The version every binary prints (`--version`, `version`), the gateway
# serves in /.well-known/vpn and `vpn status` shows (internal/version).
LDFLAGS := -s -w -X github.com/clearpath-vpn/clearpath/internal/version.Version=$(VERSION)

.PHONY: help build tray dex deps test demo bench bench-quick lint fmt-check vet cross darwin-check mac-check bpf dist package-test image clean distclean

help:
	@echo "make build   build vpn and vpn-gateway into bin/ (CGO_ENABLED=0)"
	@echo "make tray    build the tray app bin/vpn-tray (cgo: fyne; X11/GL dev packages from make deps)"
	@echo "make dex     build the Dex identity provider used by tests into bin/dex"
	@echo "make deps    install the Debian packages tests and demo need (only missing ones)"
	@echo "make test    deps + dex + build + gofmt + vet + staticcheck + every test, end-to-end included (root)"
	@echo "make demo    run gateway, Dex and client in network namespaces, narrated (root)"
	@echo "make bench   ClearPath vs the reference wireguard-go, fairness and ablation rows, Go benchmarks (root, ~35 min)"
	@echo "make bench-quick  the same tunnels, 2 rounds of 3 s tests, no Go benchmarks (root, ~5 min; not for publishing)"
	@echo "make lint    gofmt, go vet and staticcheck"
	@echo "make cross   cross-compile the client for macOS (arm64, amd64)"
	@echo "make darwin-check  go vet and test binaries for macOS, darwin route tests run on Linux (part of make test)"
	@echo "make mac-check   on a real Mac (root): route tests on the kernel; with MAC_CHECK_DST and a tunnel up, source address, curl, kill -9 (README macOS)"
	@echo "make bpf     regenerate bpf/flows_bpfel.{go,o} from bpf/flows.c (needs clang, libbpf-dev; not part of make test)"
	@echo "make dist    release tarballs (linux, darwin; amd64, arm64), .deb and .rpm, SHA256SUMS into dist/ (no tray: cgo)"
	@echo "make package-test  install the .deb on a clean Debian root (debootstrap, cached in /var/cache/clearpath-test; root)"
	@echo "make image   the gateway container image clearpath/gateway (FROM scratch; docker or podman)"
	@echo "make clean   remove built binaries and artifacts (keeps bin/dex; distclean removes it)"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(CMDS)

# The tray app is the one command built with cgo (fyne: GLFW, OpenGL, X11);
# a cold build takes about 4 minutes, then seconds.
tray:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/vpn-tray

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

test: deps dex build lint darwin-check
	@if [ "$$(id -u)" -ne 0 ]; then echo "WARNING: not root: namespace and end-to-end tests will skip"; fi
	@rm -f artifacts/vpn-up.txt
	@start=$$(date +%s); rc=0; \
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./... || rc=$$?; \
	echo "make test: go test took $$(( $$(date +%s) - start ))s"; exit $$rc
	@cat artifacts/vpn-up.txt 2>/dev/null || true

# DEMO_FLAGS="-pause 2s -user erin" to present it slowly or as someone else.
demo: deps dex build
	$(GO) run ./internal/tstest/lab/cmd/demo $(DEMO_FLAGS)

# The tunnel comparison and the Go benchmarks (bench/run.sh); not part of
# `make test`. BENCH_FLAGS="-extra" passes flags to tunnelbench (bench/README.md).
bench: deps dex build bin/wireguard-go
	bench/run.sh

bench-quick: deps dex build bin/wireguard-go
	BENCH_QUICK=1 bench/run.sh

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

# No Mac in CI: prove the macOS code vets and its tests compile for both
# arches (the whole module but the tray's fyne layer, which needs cgo on
# macOS; test files included), then run the darwin route
# tests on Linux against a shadow build of x/net/route with darwin's
# constants (see the script). About 35 s cold, 11 s warm on 2 cores.
darwin-check:
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	for arch in arm64 amd64; do \
		echo "darwin/$$arch: vet, build vpn, compile tests"; \
		CGO_ENABLED=0 GOOS=darwin GOARCH=$$arch $(GO) vet $$(GOOS=darwin $(GO) list -e ./... 2>/dev/null | grep -v -e /cmd/vpn-tray -e /tray/ui) ; \
		CGO_ENABLED=0 GOOS=darwin GOARCH=$$arch $(GO) build -o "$$out/vpn-$$arch" ./cmd/vpn ; \
		CGO_ENABLED=0 GOOS=darwin GOARCH=$$arch $(GO) test -c -o "$$out/" ./routes/... ./client/... ; \
	done
	scripts/darwin-shadow-test.sh

# On a real Mac only (root): what the XNU model cannot prove; see
# scripts/mac-check.sh and the README's macOS section.
mac-check:
	GO=$(GO) scripts/mac-check.sh

# The eBPF object and its Go bindings are committed, so building and
# testing need no clang; this regenerates them after editing bpf/flows.c
# (reproducible: the same clang gives the same bytes).
bpf:
	@command -v clang >/dev/null || { echo "make bpf: needs clang and libbpf-dev (apt-get install -y clang libbpf-dev bpftool)"; exit 1; }
	@test -f /usr/include/bpf/bpf_helpers.h || { echo "make bpf: needs libbpf-dev (apt-get install -y libbpf-dev)"; exit 1; }
	cd bpf && $(GO) generate ./

# Release artifacts (scripts/dist.sh): tarballs with binaries, LICENSE,
# README, units, completions and man pages; .deb and .rpm built with nfpm
# (pinned in packaging/dist/go.mod); SHA256SUMS. DIST_TARGETS and
# DIST_FORMATS narrow it (see the script).
dist:
	VERSION='$(VERSION)' GO='$(GO)' scripts/dist.sh

# Not part of make test: cold, debootstrap and the deb build take minutes
# (the root is cached in /var/cache/clearpath-test, then about a minute).
# Then the .deb under systemd as pid 1 (podman + runc, a Debian root with
# systemd cached next to the minbase one): the agent service in the lab.
package-test:
	CLEARPATH_PACKAGE_TEST=1 $(GO) test -count=1 -v -timeout 30m -run TestDebInstallsOnCleanDebian ./packaging/
	CLEARPATH_PACKAGE_TEST=1 $(GO) test -count=1 -v -timeout 30m -run 'TestPackaged.*UnderSystemd' ./internal/tstest/e2e/

# The gateway's container image (deploy/docker/Dockerfile): the static
# binary, the CA bundle and the example config, no base image to pull.
# deploy/compose/ runs it with PostgreSQL, Dex and an example service.
CONTAINER ?= $(shell command -v docker || command -v podman)
image:
	rm -rf bin/image && mkdir -p bin/image
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/image/ ./cmd/vpn-gateway
	bin/image/vpn-gateway init > bin/image/gateway.yaml.example
	cp /etc/ssl/certs/ca-certificates.crt deploy/docker/Dockerfile bin/image/
	@test -n "$(CONTAINER)" || { echo "make image: needs docker or podman (apt-get install -y podman)"; exit 1; }
	$(CONTAINER) build $(if $(findstring podman,$(CONTAINER)),--format docker) -t clearpath/gateway:$(VERSION) -t clearpath/gateway:dev bin/image

clean:
	rm -rf dist bin/vpn bin/vpn-gateway bin/vpn-tray bin/darwin-* bin/linux-* artifacts

distclean: clean
	rm -rf bin

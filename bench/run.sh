#!/usr/bin/env bash
# `make bench`: the tunnel comparison (bench/tunnelbench) and the Go
# benchmarks, results into bench/results/. Run as root from the repository
# root after `make build` and with bin/wireguard-go built (the Makefile does
# both). BENCH_FLAGS go to tunnelbench (e.g. "-extra" or "-only ours,wg").
# BENCH_QUICK=1 (`make bench-quick`) is the development run: tunnelbench
# -quick and no Go benchmarks; its figures are not for publishing.
# BENCH_OUT puts the results elsewhere (default bench/results).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${BENCH_OUT:-bench/results}
mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H%MZ)
echo "bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"

quick=()
if [ "${BENCH_QUICK:-}" = 1 ]; then
	quick=(-quick)
fi
# tunnelbench clears the GO* variables of every process it starts (and
# lists them in its report); build it first so `go run`'s own build is not
# timed and its flags are not the tunnels'.
go build -o bin/tunnelbench ./bench/tunnelbench
# shellcheck disable=SC2086
bin/tunnelbench -out "$out" "${quick[@]}" ${BENCH_FLAGS:-}
echo "bench: the README's benchmark table: $out/latest-readme-table.md"

if [ "${BENCH_QUICK:-}" = 1 ]; then
	exit 0
fi
# Go benchmarks: route engine (snapshot and diff of 100,000 routes in a
# namespace, doctor on 10,000), IPAM allocation, the gateway's device with
# 10,000 peers (server/); then the real vpn-gateway in the lab
# (internal/tstest/e2e): its memory with 10,000 registered peers and the
# registrations per second it took (issue 24's gateway targets; a few
# minutes). GATEWAY_BENCH=0 skips the latter.
gobench="$out/$stamp-go-bench.txt"
rc=0
{
	echo "# go test -bench, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	st=0
	go test -count=1 -run '^$' -bench . -benchtime "${GO_BENCHTIME:-2s}" -timeout 10m ./routes/... ./server/... || st=$?
	if [ "${GATEWAY_BENCH:-1}" != 0 ]; then
		go test -count=1 -run '^$' -bench 'GatewayMemory10k' -benchtime 1x -timeout 20m ./internal/tstest/e2e || st=$?
	fi
	exit "$st"
} 2>&1 | tee "$gobench" || rc=$?
cp "$gobench" "$out/latest-go-bench.txt"
echo "bench: results in $out (latest-tunnels.md, latest-tunnels.tsv, latest-readme-table.md, latest-go-bench.txt)"
if [ "$rc" != 0 ]; then
	echo "bench: a Go benchmark failed (exit $rc): see $gobench" >&2
fi
exit "$rc"

#!/usr/bin/env bash
# `make bench`: the tunnel comparison (bench/tunnelbench) and the Go
# benchmarks, results into bench/results/. Run as root from the repository
# root after `make build` and with bin/wireguard-go built (the Makefile does
# both). BENCH_FLAGS go to tunnelbench (e.g. "-rounds 5 -t 10s").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=bench/results
mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H%MZ)
echo "bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"

# shellcheck disable=SC2086
go run ./bench/tunnelbench -out "$out" ${BENCH_FLAGS:-}

# Go benchmarks: route engine (snapshot and diff of 100,000 routes in a
# namespace, doctor on 10,000), IPAM allocation and registration (server/).
gobench="$out/$stamp-go-bench.txt"
{
	echo "# go test -bench, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	go test -count=1 -run '^$' -bench . -benchtime "${GO_BENCHTIME:-2s}" -timeout 10m ./routes/... ./server/...
} 2>&1 | tee "$gobench"
cp "$gobench" "$out/latest-go-bench.txt"
echo "bench: results in $out (latest-tunnels.md, latest-tunnels.tsv, latest-go-bench.txt)"

package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// roundOrder is the order of n rows in round (1-based): "fixed" (as
// listed), "rotate" (the list turned by one place per round, so each row
// is first once every n rounds) or "shuffle" (a permutation drawn from
// seed and the round, so a run can be repeated exactly).
func roundOrder(n, round int, mode string, seed uint64) ([]int, error) {
	order := make([]int, n)
	switch mode {
	case "fixed":
		for i := range order {
			order[i] = i
		}
	case "rotate":
		for i := range order {
			order[i] = (i + round - 1) % n
		}
	case "shuffle":
		order = rand.New(rand.NewPCG(seed, uint64(round))).Perm(n)
	default:
		return nil, fmt.Errorf("-order %q: want shuffle, rotate or fixed", mode)
	}
	return order, nil
}

// Time a row costs per round besides its iperf3 tests (start, warm-up,
// set-up, pings, idle RSS, tear-down: ClearPath starts a gateway and runs
// an untimed `vpn up`/`vpn down` first), and per iperf3 test besides its
// length (the omitted second, connecting, the report), measured on the
// 2-core development machine; and the run's fixed cost (lab, Dex, logins).
const (
	oursOverhead  = 5 * time.Second
	otherOverhead = 2 * time.Second
	testOverhead  = 1500 * time.Millisecond
	fixedOverhead = 30 * time.Second
)

// testsOf is how many iperf3 tests a row of class runs.
func testsOf(c testClass) int {
	switch c {
	case classFull:
		return 4
	case classLight:
		return 2
	}
	return 0
}

// estimate is how long a run of rows over rounds of dur-long tests takes.
func estimate(rows []rowSpec, rounds int, dur time.Duration) time.Duration {
	per := time.Duration(0)
	for _, r := range rows {
		per += otherOverhead
		if strings.HasPrefix(r.Label, oursLabel) {
			per += oursOverhead - otherOverhead
		}
		per += time.Duration(testsOf(r.Class)) * (dur + testOverhead)
	}
	return fixedOverhead + time.Duration(rounds)*per
}

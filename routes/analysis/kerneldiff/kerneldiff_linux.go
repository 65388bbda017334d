package kerneldiff

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// Answer is a walk's result in the terms `ip route get fibmatch` can be
// compared with.
type Answer struct {
	// Verdict is the deciding route's type ("unicast", "local", "throw",
	// "blackhole", "unreachable", "prohibit", ...), "rule-blackhole",
	// "rule-unreachable", "rule-prohibit", or "no-route".
	Verdict string
	// The deciding route (when Verdict is a route type).
	Table  int
	Dst    netip.Prefix
	Device string
}

func (a Answer) String() string {
	if !a.Dst.IsValid() {
		return a.Verdict
	}
	return fmt.Sprintf("%s %s dev %s table %s", a.Verdict, a.Dst, a.Device, routes.TableName(a.Table))
}

// Walker is a policy walk under test.
type Walker func(snap *routes.Snapshot, f analysis.Flow) Answer

// FromDecision turns analysis.Walk's decision into an Answer.
func FromDecision(d analysis.Decision) Answer {
	a := Answer{Verdict: d.Verdict()}
	if !d.NoRoute && d.Route.Dst.IsValid() {
		a.Table, a.Dst, a.Device = d.Route.Table, d.Route.Dst, d.Route.Device
	}
	return a
}

// Case is one generated rule set: the `ip` commands that build it and the
// flows to ask about.
type Case struct {
	Name     string
	Commands [][]string // arguments of `ip -n NS ...`
	Flows    []analysis.Flow
}

// Result counts one comparison run.
type Result struct {
	Cases, Commands, Refused int // commands the kernel refused are left out of the state
	Flows, Compared, Skipped int
	Mismatches               []string
	SkipReasons              map[string]int
}

// Add merges o into r.
func (r *Result) Add(o Result) {
	r.Cases += o.Cases
	r.Commands += o.Commands
	r.Refused += o.Refused
	r.Flows += o.Flows
	r.Compared += o.Compared
	r.Skipped += o.Skipped
	r.Mismatches = append(r.Mismatches, o.Mismatches...)
	if r.SkipReasons == nil {
		r.SkipReasons = map[string]int{}
	}
	for k, v := range o.SkipReasons {
		r.SkipReasons[k] += v
	}
}

// Devices of every case's namespace (besides lo): netnstest's lan0/peer0
// pair and a second pair d1/e1, all up, forwarding on, rp_filter off (IPv4
// input then checks only that the source's own route is not local or
// broadcast, which no remote source has).
var (
	Devices = []string{"lan0", "peer0", "d1", "e1"}
	local4  = []netip.Addr{netip.MustParseAddr("10.1.2.10"), netip.MustParseAddr("10.201.1.1")}
	local6  = []netip.Addr{netip.MustParseAddr("fd01:2::10"), netip.MustParseAddr("fd00:201:1::1")}
	remote4 = netip.MustParsePrefix("10.200.0.0/16") // sources of forwarded flows
	remote6 = netip.MustParsePrefix("fd00:200::/48")
)

// Run builds c in a fresh namespace and compares walk with the kernel for
// each of c's flows.
func Run(t testing.TB, c Case, walk Walker) Result {
	t.Helper()
	ns := netnstest.New(t)
	res := Result{Cases: 1, SkipReasons: map[string]int{}}
	setup := [][]string{
		{"link", "add", "d1", "type", "veth", "peer", "name", "e1"},
		{"link", "set", "d1", "up"}, {"link", "set", "e1", "up"},
		{"addr", "add", "10.201.1.1/24", "dev", "d1"},
		{"addr", "add", "fd00:201:1::1/64", "dev", "d1", "nodad"},
	}
	for _, a := range setup {
		ns.IPIn(a...)
	}
	for _, s := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter"} {
		v := "1"
		if strings.HasSuffix(s, "rp_filter") {
			v = "0"
		}
		if out, err := exec.Command("ip", "netns", "exec", ns.Name, "sh", "-c", "echo "+v+" > /proc/sys/"+s).CombinedOutput(); err != nil {
			t.Fatalf("set %s in %s: %v\n%s", s, ns.Name, err, out)
		}
	}
	// The case's commands, one `ip -batch` per family (a batch line
	// cannot carry -4/-6); the kernel's refusals are counted and logged.
	for _, fam := range []string{"-4", "-6"} {
		var lines []string
		for _, a := range c.Commands {
			if len(a) > 0 && a[0] == fam {
				lines = append(lines, strings.Join(a[1:], " "))
			}
		}
		_, failed := batch(t, ns.Name, fam, lines)
		res.Commands += len(lines)
		res.Refused += len(failed)
		for i, msg := range failed {
			t.Logf("%s: kernel refused `ip %s %s`: %s", c.Name, fam, lines[i], msg)
		}
	}
	nsh, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatalf("%s: open namespace: %v", c.Name, err)
	}
	defer nsh.Close()
	sys, err := routes.NewSystemIn(nsh)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	defer sys.(io.Closer).Close()
	snap, err := sys.Snapshot()
	if err != nil {
		t.Fatalf("%s: snapshot: %v", c.Name, err)
	}
	answers := kernel(t, ns.Name, c.Flows)
	for i, f := range c.Flows {
		res.Flows++
		k := answers[i]
		if k.skip != "" {
			res.Skipped++
			res.SkipReasons[k.skip]++
			continue
		}
		res.Compared++
		w := walk(snap, f)
		if !k.agrees(w) {
			if len(res.Mismatches) == 0 {
				t.Logf("%s: state at its first mismatch:\n%s", c.Name, dump(snap))
			}
			res.Mismatches = append(res.Mismatches, fmt.Sprintf("%s: ip route get fibmatch %s: kernel %s, walk %s", c.Name, strings.Join(flowArgs(f), " "), k, w))
		}
	}
	return res
}

func dump(s *routes.Snapshot) string {
	var b strings.Builder
	for _, r := range s.Rules {
		b.WriteString("  " + r.String() + "\n")
	}
	for _, r := range s.Routes {
		if r.Table != 255 {
			b.WriteString("  " + r.String() + "\n")
		}
	}
	return b.String()
}

// kernelAnswer is what `ip route get fibmatch` said.
type kernelAnswer struct {
	skip   string // why the answer cannot be compared
	errno  string // "" on success
	typ    string
	table  int
	dst    netip.Prefix
	device string
}

func (k kernelAnswer) String() string {
	if k.errno != "" {
		return k.errno
	}
	return fmt.Sprintf("%s %s dev %s table %s", k.typ, k.dst, k.device, routes.TableName(k.table))
}

// errnoVerdicts are the walk verdicts each kernel error stands for
// (fib_props errors, fib_rules_lookup's -ESRCH turned ENETUNREACH).
var errnoVerdicts = map[string][]string{
	"EINVAL":       {"blackhole", "rule-blackhole"},
	"EHOSTUNREACH": {"unreachable"},
	"ENETUNREACH":  {"rule-unreachable", "no-route"},
	"EACCES":       {"prohibit", "rule-prohibit"},
}

func (k kernelAnswer) agrees(w Answer) bool {
	if k.errno != "" {
		return slices.Contains(errnoVerdicts[k.errno], w.Verdict)
	}
	return w.Verdict == k.typ && w.Table == k.table && w.Dst == k.dst && w.Device == k.device
}

func flowArgs(f analysis.Flow) []string {
	args := []string{f.Dst.String()}
	if f.Src.IsValid() {
		args = append(args, "from", f.Src.String())
	}
	if f.IIF != "" {
		args = append(args, "iif", f.IIF)
	}
	if f.FwMark != 0 {
		args = append(args, "mark", fmt.Sprintf("%#x", f.FwMark))
	}
	return args
}

var messages = map[string]string{
	"Invalid argument":       "EINVAL",
	"No route to host":       "EHOSTUNREACH",
	"Network is unreachable": "ENETUNREACH",
	"Permission denied":      "EACCES",
}

// batch runs lines through `ip -n ns fam -j -force -batch -` and returns
// each line's output (nil when it failed) and the error message of each
// line that failed, by index.
func batch(t testing.TB, ns, fam string, lines []string) ([]json.RawMessage, map[int]string) {
	t.Helper()
	failed := map[int]string{}
	if len(lines) == 0 {
		return nil, failed
	}
	cmd := exec.Command("ip", "-n", ns, fam, "-j", "-force", "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // exit 1 when a line failed: read per line below
	var msg []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if n, ok := strings.CutPrefix(l, "Command failed -:"); ok {
			i, err := strconv.Atoi(strings.TrimSpace(n))
			if err != nil || i < 1 || i > len(lines) {
				t.Fatalf("ip -batch: unreadable %q", l)
			}
			failed[i-1] = strings.Join(msg, "; ")
			msg = nil
		} else if strings.TrimSpace(l) != "" {
			msg = append(msg, strings.TrimSpace(l))
		}
	}
	outs := make([]json.RawMessage, len(lines))
	dec := json.NewDecoder(strings.NewReader(stdout.String()))
	for i := range lines {
		if _, bad := failed[i]; bad {
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if strings.HasPrefix(lines[i], "route get") {
				t.Fatalf("ip -batch: no output for line %d %q: %v", i+1, lines[i], err)
			}
			continue // commands that print nothing come last or not at all
		}
		outs[i] = raw
	}
	return outs, failed
}

// kernel asks `ip route get fibmatch` in ns for each flow (one batch per
// family).
func kernel(t testing.TB, ns string, flows []analysis.Flow) []kernelAnswer {
	out := make([]kernelAnswer, len(flows))
	for _, fam := range []string{"-4", "-6"} {
		var idx []int
		var lines []string
		for i, f := range flows {
			if f.Dst.Is6() == (fam == "-6") {
				idx = append(idx, i)
				lines = append(lines, "route get fibmatch "+strings.Join(flowArgs(f), " "))
			}
		}
		outs, failed := batch(t, ns, fam, lines)
		for j, i := range idx {
			if msg, bad := failed[j]; bad {
				msg = strings.TrimSpace(strings.TrimPrefix(msg, "RTNETLINK answers:"))
				if e, ok := messages[msg]; ok {
					out[i] = kernelAnswer{errno: e}
				} else {
					out[i] = kernelAnswer{skip: "ip refused the query: " + msg}
				}
				continue
			}
			out[i] = parseAnswer(flows[i], outs[j])
		}
	}
	return out
}

// parseAnswer reads one `ip -j route get fibmatch` answer.
func parseAnswer(f analysis.Flow, out []byte) kernelAnswer {
	var rs []struct {
		Type  string `json:"type"`
		Dst   string `json:"dst"`
		Dev   string `json:"dev"`
		Table string `json:"table"`
	}
	err := json.Unmarshal(out, &rs)
	if err != nil || len(rs) != 1 {
		return kernelAnswer{skip: fmt.Sprintf("unreadable answer %q", out)}
	}
	r := rs[0]
	k := kernelAnswer{typ: r.Type, device: r.Dev}
	if k.typ == "" {
		k.typ = "unicast"
	}
	switch r.Table {
	case "", "main":
		k.table = 254
	case "local":
		k.table = 255
	case "default":
		k.table = 253
	default:
		n, err := strconv.Atoi(r.Table)
		if err != nil {
			return kernelAnswer{skip: "unreadable table " + r.Table}
		}
		k.table = n
	}
	switch {
	case r.Dst == "default" && f.Dst.Is4():
		k.dst = netip.MustParsePrefix("0.0.0.0/0")
	case r.Dst == "default":
		k.dst = netip.MustParsePrefix("::/0")
	case strings.Contains(r.Dst, "/"):
		k.dst, err = netip.ParsePrefix(r.Dst)
	default:
		var a netip.Addr
		a, err = netip.ParseAddr(r.Dst)
		k.dst = netip.PrefixFrom(a, a.BitLen())
	}
	if err != nil {
		return kernelAnswer{skip: "unreadable destination " + r.Dst}
	}
	switch k.typ {
	case "throw", "blackhole", "unreachable", "prohibit":
		k.device = "" // the snapshot drops IPv6's "dev lo" on these
	}
	return k
}

// WgQuick is the rule set wg-quick installs for a full tunnel (AllowedIPs
// 0.0.0.0/0, ::/0, table and fwmark 51820), the tunnel played by d1:
// `ip rule add not fwmark 51820 table 51820` then `ip rule add table main
// suppress_prefixlength 0`, without priorities, as wg-quick does.
func WgQuick() Case {
	c := Case{Name: "wg-quick"}
	for _, fam := range []string{"-4", "-6"} {
		def := "0.0.0.0/0"
		if fam == "-6" {
			def = "::/0"
		}
		c.Commands = append(c.Commands,
			[]string{fam, "route", "add", def, "dev", "d1", "table", "51820"},
			[]string{fam, "rule", "add", "not", "fwmark", "51820", "table", "51820"},
			[]string{fam, "rule", "add", "table", "main", "suppress_prefixlength", "0"},
		)
	}
	dsts := []string{"1.1.1.1", "10.1.2.77", "10.1.2.10", "10.201.1.9", "10.9.9.9", "2606:4700::1111", "fd01:2::99", "fd00:201:1::9", "fd01:2::10"}
	for _, s := range dsts {
		d := netip.MustParseAddr(s)
		for _, mark := range []uint32{0, 51820} {
			c.Flows = append(c.Flows, analysis.Flow{Dst: d, FwMark: mark})
			if d.Is4() {
				c.Flows = append(c.Flows, analysis.Flow{Dst: d, FwMark: mark, Src: local4[0]},
					analysis.Flow{Dst: d, FwMark: mark, Src: netip.MustParseAddr("10.200.3.4"), IIF: "peer0"})
			} else {
				c.Flows = append(c.Flows, analysis.Flow{Dst: d, FwMark: mark, Src: local6[0]},
					analysis.Flow{Dst: d, FwMark: mark, Src: netip.MustParseAddr("fd00:200::3:4"), IIF: "peer0"})
			}
		}
	}
	return c
}

// Prefixes the generator draws destinations from: nested, so longest
// match, throw and suppress_prefixlength interact.
var (
	dstPrefixes4 = mustPrefixes("0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.1.2.77/32",
		"10.2.0.0/16", "10.2.3.0/24", "10.9.0.0/16", "10.201.0.0/16", "10.201.1.0/24", "192.0.2.0/24", "198.51.100.0/24", "128.0.0.0/1")
	dstPrefixes6 = mustPrefixes("::/0", "fd00::/8", "fd01::/16", "fd01:2::/64", "fd01:2::80/121", "fd01:2::77/128",
		"fd02::/16", "fd02:3::/32", "fd09::/16", "fd00:201::/32", "fd00:201:1::/64", "2001:db8::/32", "8000::/1")
	marks = []uint32{1, 2, 0x10, 0xff, 51820, 0x7411}
	masks = []uint32{0xff, 0xffff, 0xf, 0x7fff}
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Generate makes a random case from seed: per family 3 to 14 rules
// (priorities, from, to, fwmark with and without mask, iif, oif, not,
// lookup with suppress_prefixlength 0 or longer, blackhole, unreachable,
// prohibit, nop, goto) and 2 to 9 routes in each of tables 100-102, main
// and default (unicast on the four devices with metrics, throw,
// blackhole, unreachable, prohibit), sometimes without main's default;
// then flows sent by the host (without and with a source) and received on
// each device, with and without marks.
func Generate(seed uint64, flows int) Case {
	rnd := rand.New(rand.NewPCG(seed, seed^0x5eed))
	c := Case{Name: fmt.Sprintf("seed-%d", seed)}
	pick := func(n int) int { return rnd.IntN(n) }
	chance := func(p float64) bool { return rnd.Float64() < p }
	var ruleFrom, ruleTo []netip.Prefix
	var ruleMarks []uint32
	if chance(0.3) {
		c.Commands = append(c.Commands, []string{"-4", "route", "del", "default"}, []string{"-6", "route", "del", "default"})
	}
	tables := []string{"100", "101", "102", "main", "default"}
	for _, v6 := range []bool{false, true} {
		fam := "-4"
		dsts, local, remote := dstPrefixes4, local4, remote4
		if v6 {
			fam, dsts, local, remote = "-6", dstPrefixes6, local6, remote6
		}
		prios := []int{}
		n := 3 + pick(12)
		for range n {
			prio := 2 + pick(400)*100
			if len(prios) > 0 && chance(0.15) {
				prio = prios[pick(len(prios))] // equal priorities: kernel list order
			}
			prios = append(prios, prio)
		}
		for _, prio := range prios {
			a := []string{fam, "rule", "add"}
			if chance(0.1) {
				a = append(a, "not")
			}
			a = append(a, "pref", strconv.Itoa(prio))
			if chance(0.3) {
				var p netip.Prefix
				if chance(0.5) {
					p = randomSub(rnd, remote)
				} else {
					p = netip.PrefixFrom(local[pick(len(local))], []int{16, 24, 32, 64, 128}[pick(2)+2*b2i(v6)]).Masked()
				}
				a = append(a, "from", p.String())
				ruleFrom = append(ruleFrom, p)
			}
			if chance(0.3) {
				p := dsts[1+pick(len(dsts)-1)]
				a = append(a, "to", p.String())
				ruleTo = append(ruleTo, p)
			}
			if chance(0.25) {
				m := marks[pick(len(marks))]
				s := strconv.FormatUint(uint64(m), 10)
				if chance(0.5) {
					s += "/" + fmt.Sprintf("%#x", masks[pick(len(masks))])
				}
				a = append(a, "fwmark", s)
				ruleMarks = append(ruleMarks, m)
			}
			if chance(0.2) {
				a = append(a, "iif", append(slices.Clone(Devices), "lo")[pick(len(Devices)+1)])
			}
			if chance(0.05) {
				a = append(a, "oif", Devices[pick(len(Devices))])
			}
			switch x := rnd.Float64(); {
			case x < 0.06:
				a = append(a, "blackhole")
			case x < 0.12:
				a = append(a, "unreachable")
			case x < 0.17:
				a = append(a, "prohibit")
			case x < 0.20:
				a = append(a, "nop")
			case x < 0.27:
				target := prios[pick(len(prios))]
				if target <= prio {
					target = prio + 100*(1+pick(50))
				}
				a = append(a, "goto", strconv.Itoa(target))
			default:
				a = append(a, "lookup", tables[pick(len(tables))])
				switch y := rnd.Float64(); {
				case y < 0.2:
					a = append(a, "suppress_prefixlength", "0")
				case y < 0.3:
					a = append(a, "suppress_prefixlength", strconv.Itoa([]int{8, 16, 24, 32, 64}[pick(3)+2*b2i(v6)]))
				}
			}
			c.Commands = append(c.Commands, a)
		}
		for _, tbl := range tables {
			for range 2 + pick(8) {
				p := dsts[pick(len(dsts))]
				a := []string{fam, "route", "add"}
				switch x := rnd.Float64(); {
				case x < 0.15:
					a = append(a, "throw", p.String())
				case x < 0.25:
					a = append(a, "blackhole", p.String())
				case x < 0.35:
					a = append(a, "unreachable", p.String())
				case x < 0.43:
					a = append(a, "prohibit", p.String())
				default:
					a = append(a, p.String(), "dev", Devices[pick(len(Devices))])
				}
				a = append(a, "table", tbl)
				if chance(0.5) {
					a = append(a, "metric", strconv.Itoa([]int{5, 10, 100, 2000}[pick(4)]))
				}
				c.Commands = append(c.Commands, a)
			}
		}
		// Flows of this family.
		for range flows / 2 {
			var dst netip.Addr
			switch x := rnd.Float64(); {
			case x < 0.1:
				dst = local[pick(len(local))]
			case x < 0.2 && len(ruleTo) > 0:
				dst = randomIn(rnd, ruleTo[pick(len(ruleTo))])
			default:
				dst = randomIn(rnd, dsts[pick(len(dsts))])
			}
			if dst.Is6() != v6 || remote.Contains(dst) || dst.IsMulticast() || dst.IsLinkLocalUnicast() || dst.IsUnspecified() || dst.IsLoopback() {
				continue
			}
			f := analysis.Flow{Dst: dst}
			switch x := rnd.Float64(); {
			case x < 0.3: // sent by the host, no source
			case x < 0.5:
				f.Src = local[pick(len(local))]
			default:
				f.IIF = Devices[pick(len(Devices))]
				f.Src = randomIn(rnd, remote)
				var froms []netip.Prefix
				for _, p := range ruleFrom {
					if remote.Overlaps(p) && p.Addr().Is6() == v6 {
						froms = append(froms, p)
					}
				}
				if len(froms) > 0 && chance(0.5) {
					f.Src = randomIn(rnd, froms[pick(len(froms))])
				}
			}
			switch x := rnd.Float64(); {
			case x < 0.5:
			case x < 0.8 && len(ruleMarks) > 0:
				f.FwMark = ruleMarks[pick(len(ruleMarks))]
			default:
				f.FwMark = marks[pick(len(marks))]
			}
			c.Flows = append(c.Flows, f)
		}
	}
	return c
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// randomSub is a random prefix inside p, 0 to 12 bits longer.
func randomSub(rnd *rand.Rand, p netip.Prefix) netip.Prefix {
	bits := p.Bits() + rnd.IntN(13)
	return netip.PrefixFrom(randomIn(rnd, p), bits).Masked()
}

// randomIn is a random address of p (not its first, so not a subnet's
// network address).
func randomIn(rnd *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if rnd.IntN(2) == 1 {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	if a == p.Masked().Addr() && p.Bits() < a.BitLen() {
		a = a.Next()
	}
	return a
}

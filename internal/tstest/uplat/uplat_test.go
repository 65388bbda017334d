// Package uplat measures `vpn up` to the first reply through the tunnel in
// the reference lab (real vpn and vpn-gateway binaries, real Dex, a cached
// login), the way bench/tunnelbench does, beside the reference
// wireguard-go's bare set-up measured the same way in the same run. It
// reports medians and the agent's per-phase breakdown; it asserts nothing
// about time (issue 24).
//
//	go test -count=1 -v -run TestUpLatency ./internal/tstest/uplat/ -uplat.runs 20
//
// -uplat.base DIR adds the modes of another build's vpn (say main's) to
// the same rounds, for before/after figures under the same load.
package uplat

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/internal/wgdev"
)

var (
	runs     = flag.Int("uplat.runs", 5, "rounds; each times every mode once, the order rotating")
	useTLS   = flag.Bool("uplat.tls", false, "serve the gateway's API over TLS (default plain http, as bench/tunnelbench)")
	baseDir  = flag.String("uplat.base", "", "directory holding a baseline build's vpn: its modes are timed in the same rounds")
	shmStore = flag.Bool("uplat.shm-store", false, "keep the gateway's SQLite store in /dev/shm: its fsyncs then do not queue behind the client's on the one disk the lab shares, as a gateway on its own host would not")
	binDir   = flag.String("uplat.bin", "", "directory holding prebuilt vpn and vpn-gateway (default: build them)")
	wgGoBin  = flag.String("uplat.wireguard-go", "", "the reference wireguard-go (default <repo>/bin/wireguard-go, `make bin/wireguard-go`)")
)

// The reference wireguard-go pair: laptop (client) to gw (server) over the
// lab's public segment, as bench/tunnelbench sets it up.
const (
	refPort  = 51830
	refSrvIP = "10.66.0.1"
	refCliIP = "10.66.0.2"
)

type rig struct {
	t         *testing.T
	s         *stack.Stack
	cli       *stack.Client
	wgGo      string
	srvKey    wgtypes.Key
	cliKey    wgtypes.Key
	srvIface  string
	cliIface  string
	srvProc   *lab.Proc
	agentSeen int     // connect-phases lines already read from agent.log
	setupMS   float64 // the agent's share of the last up (status setup_ms)
	// cli is the last `vpn up --debug`'s own "up phases" line (token,
	// agent, up, total: cli_*_ms) and cli_exec_ms, the wall time outside
	// them (ip netns exec, the process's start and exit).
	cliPh  map[string]float64
	vpnBin string // the vpn binary of the mode being timed
}

func TestUpLatency(t *testing.T) {
	lab.SkipUnlessRoot(t)
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, wgGo: *wgGoBin}
	if r.wgGo == "" {
		r.wgGo = filepath.Join(root, "bin", "wireguard-go")
	}
	if _, err := os.Stat(r.wgGo); err != nil {
		t.Skipf("no reference wireguard-go at %s: run `make bin/wireguard-go`", r.wgGo)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var bins stack.Binaries
	if *binDir != "" {
		bins = stack.Binaries{VPN: filepath.Join(*binDir, "vpn"), Gateway: filepath.Join(*binDir, "vpn-gateway")}
		if bins.Dex, err = dex.Binary(); err != nil {
			t.Fatal(err)
		}
	} else if bins, err = stack.Build(ctx, root, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ref := lab.ReferenceT(t, lab.Options{})
	// Every round registers three times: lift the per-user rate.
	opts := []stack.Option{stack.WithGatewayConfig("api:\n  register_per_user: \"off\"\n  register_per_source: \"off\"")}
	if !*useTLS {
		opts = append(opts, stack.WithPlainHTTP())
	}
	if *shmStore {
		dir, err := os.MkdirTemp("/dev/shm", "uplat-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		opts = append(opts, stack.WithStore(filepath.Join(dir, "gateway.db")))
	}
	if r.s, err = stack.Start(ctx, ref, bins, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.RemoveCAFile)
	r.cli = r.s.Client("alice")
	if err := r.cacheLogin(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := r.startRefServer(ctx); err != nil {
		t.Fatal(err)
	}
	// Warm up as a gateway that has served a while (keys of the identity
	// provider fetched) and the page cache holding the binaries.
	if _, err := r.upStartingAgent(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.reference(ctx); err != nil {
		t.Fatal(err)
	}

	type mode struct {
		name string
		vpn  string // the vpn binary ("" for the reference)
		run  func(context.Context) (time.Duration, error)
	}
	modes := []mode{{"wireguard-go bare set-up (reference)", "", r.reference}}
	builds := []struct{ label, vpn string }{{"", bins.VPN}}
	if *baseDir != "" {
		builds = []struct{ label, vpn string }{{" [base]", filepath.Join(*baseDir, "vpn")}, {" [this tree]", bins.VPN}}
	}
	for _, bld := range builds {
		modes = append(modes,
			mode{"vpn up, agent running as a service" + bld.label, bld.vpn, r.upService},
			mode{"vpn up, starting the agent" + bld.label, bld.vpn, r.upStartingAgent})
	}
	took := make([][]time.Duration, len(modes))
	ratios := make([][]float64, len(modes)) // per round, ÷ the reference's
	phases := make([]map[string][]float64, len(modes))
	for i := 0; i < *runs; i++ {
		round := make([]time.Duration, len(modes))
		for j := range modes {
			k := (i + j) % len(modes)
			m := modes[k]
			r.vpnBin = m.vpn
			d, err := m.run(ctx)
			if err != nil {
				t.Fatalf("round %d, %s: %v", i+1, m.name, err)
			}
			round[k] = d
			took[k] = append(took[k], d)
			if k > 0 {
				ph, err := r.lastPhases()
				if err != nil {
					t.Fatal(err)
				}
				if phases[k] == nil {
					phases[k] = map[string][]float64{}
				}
				for name, v := range ph {
					phases[k][name] = append(phases[k][name], v)
				}
			}
		}
		for k := range modes {
			ratios[k] = append(ratios[k], float64(round[k])/float64(round[0]))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "set-up to first reply, %d interleaved rounds, TLS %v: median (min-max); median of per-round ratios to the reference (min-max)\n", *runs, *useTLS)
	for k, m := range modes {
		rs := slices.Clone(ratios[k])
		slices.Sort(rs)
		fmt.Fprintf(&b, "  %-52s %6.1f ms (%.1f-%.1f)  ratio %.2f (%.2f-%.2f)\n", m.name, ms(median(took[k])), ms(slices.Min(took[k])), ms(slices.Max(took[k])), rs[len(rs)/2], rs[0], rs[len(rs)-1])
	}
	for k, m := range modes {
		if k == 0 {
			continue
		}
		fmt.Fprintf(&b, "  agent phases, %s (median ms):", m.name)
		names := make([]string, 0, len(phases[k]))
		for n := range phases[k] {
			names = append(names, n)
		}
		slices.SortFunc(names, func(a, b string) int { return phaseOrder(a) - phaseOrder(b) })
		for _, n := range names {
			v := slices.Clone(phases[k][n])
			slices.Sort(v)
			fmt.Fprintf(&b, " %s=%.1f", n, v[len(v)/2])
		}
		b.WriteString("\n")
	}
	t.Log("\n" + b.String())
	if dir := os.Getenv("UPLAT_OUT"); dir != "" {
		os.WriteFile(filepath.Join(dir, "uplat.txt"), []byte(b.String()), 0o644)
	}
}

// phaseOrder keeps the phases in the order the agent logs them.
func phaseOrder(name string) int {
	order := []string{"session_ms", "register_ms", "prepare_ms", "prepare_begin_ms", "prepare_snapshot_ms", "prepare_device_ms", "config_ms", "prepare_wait_ms", "checks_ms", "begin_ms", "device_ms", "device_tun_ms", "device_wireguard_start_ms", "device_wireguard_ms", "device_link_ms", "routes_ms", "probe_ms", "finish_ms", "answer_ms", "agent_setup_ms", "start_ms", "recover_ms", "cli_exec_ms", "cli_token_ms", "cli_agent_ms", "cli_up_ms", "cli_total_ms"}
	if i := slices.Index(order, name); i >= 0 {
		return i
	}
	return len(order)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cacheLogin leaves user logged in to the gateway in the client's config
// dir, as `vpn login` does.
func (r *rig) cacheLogin(ctx context.Context, user string) error {
	tok, err := r.s.Dex.Login(ctx, dex.ClientID, user)
	if err != nil {
		return err
	}
	claims, err := dex.Claims(tok.IDToken)
	if err != nil {
		return err
	}
	exp, _ := claims["exp"].(float64)
	sub, _ := claims["sub"].(string)
	cache := &auth.Cache{Dir: r.cli.ConfigDir}
	return cache.Save(&auth.Tokens{Server: r.s.URL, Issuer: dex.Issuer, ClientID: dex.ClientID,
		IDToken: tok.IDToken, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		Expiry: time.Unix(int64(exp), 0), Subject: sub, Email: user + "@example.com"})
}

func (r *rig) vpn(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{r.bin(), "--state-dir", r.cli.StateDir}, args...)
	cmd := r.s.Laptop.Command(ctx, argv...)
	cmd.Env = append(os.Environ(), "CLEARPATH_CONFIG_DIR="+r.cli.ConfigDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *rig) bin() string {
	if r.vpnBin != "" {
		return r.vpnBin
	}
	return r.s.Bin.VPN
}

func (r *rig) upArgs() []string {
	// --debug adds one log line, the command's own phases (cliPhases).
	a := []string{"--debug", "up", "--server", r.s.URL, "--interface", r.cli.Iface}
	if *useTLS {
		return append(a, "--ca-file", r.s.CAFile)
	}
	return append(a, "--allow-http")
}

// upStartingAgent times `vpn up` with no agent running: it starts one.
func (r *rig) upStartingAgent(ctx context.Context) (time.Duration, error) {
	return r.timedUp(ctx)
}

// timedUp times `vpn up`, reads the agent's own share from `vpn status`
// and takes the tunnel down.
func (r *rig) timedUp(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	out, err := r.vpn(ctx, r.upArgs()...)
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("vpn up: %w\n%s", err, out)
	}
	r.cliPh = cliPhases(out, took)
	st, err := r.vpn(ctx, "status", "--json")
	if err != nil {
		return 0, fmt.Errorf("vpn status: %w\n%s", err, st)
	}
	var s struct {
		SetupMillis float64 `json:"setup_ms"`
	}
	if err := json.Unmarshal([]byte(st), &s); err != nil {
		return 0, fmt.Errorf("vpn status --json: %w", err)
	}
	r.setupMS = s.SetupMillis
	return took, r.down(ctx)
}

// upService starts `vpn agent` as a service would, untimed, then times
// `vpn up`.
func (r *rig) upService(ctx context.Context) (time.Duration, error) {
	logf, err := os.OpenFile(filepath.Join(r.cli.StateDir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	cmd := r.s.Laptop.Command(context.Background(), r.bin(), "--state-dir", r.cli.StateDir, "agent")
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return 0, err
	}
	go cmd.Wait()
	// `vpn status` exits 0 with no agent too: wait for the pid file,
	// which the agent writes once its socket listens.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(r.cli.StateDir, "agent.pid")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("vpn agent did not answer within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r.timedUp(ctx)
}

// down runs `vpn down` and waits until no agent holds the state dir.
func (r *rig) down(ctx context.Context) error {
	if out, err := r.vpn(ctx, "down"); err != nil {
		return fmt.Errorf("vpn down: %w\n%s", err, out)
	}
	for i := 0; i < 1000; i++ {
		if _, running, _ := agent.Running(r.cli.StateDir); !running {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("the agent still runs 5s after vpn down")
}

// lastPhases reads the newest "connect phases" line of the agent's log.
func (r *rig) lastPhases() (map[string]float64, error) {
	f, err := os.Open(filepath.Join(r.cli.StateDir, "agent.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var last, ready, tunnelUp string
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `msg="connect phases"`) {
			last = sc.Text()
			n++
		}
		if strings.Contains(sc.Text(), `msg="agent ready"`) {
			ready = sc.Text()
		}
		if strings.Contains(sc.Text(), `msg="tunnel up"`) {
			tunnelUp = sc.Text() // answer_ms: the status the up answers with
		}
	}
	if n <= r.agentSeen {
		return nil, fmt.Errorf("no new connect phases line in the agent's log")
	}
	r.agentSeen = n
	out := map[string]float64{"agent_setup_ms": r.setupMS}
	for k, v := range r.cliPh {
		out[k] = v
	}
	if ready != "" {
		last += " " + ready
	}
	if f := strings.Index(tunnelUp, " answer_ms="); f >= 0 {
		last += tunnelUp[f:]
	}
	for _, f := range strings.Fields(last) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || !strings.HasSuffix(k, "_ms") {
			continue
		}
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			out[k] = x
		}
	}
	return out, nil
}

// cliPhases reads the "up phases" line `vpn up --debug` logs (token_ms,
// agent_ms: finding or starting the agent, up_ms: the up request,
// total_ms) as cli_*_ms, and cli_exec_ms: the wall time took outside the
// command's own total.
func cliPhases(out string, took time.Duration) map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `msg="up phases"`) {
			continue
		}
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok || !strings.HasSuffix(k, "_ms") {
				continue
			}
			if x, err := strconv.ParseFloat(v, 64); err == nil {
				m["cli_"+k] = x
			}
		}
	}
	if t, ok := m["cli_total_ms"]; ok {
		m["cli_exec_ms"] = ms(took) - t
	}
	return m
}

// startRefServer runs the reference's server end in gw (untimed).
func (r *rig) startRefServer(ctx context.Context) error {
	var err error
	if r.srvKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		return err
	}
	if r.cliKey, err = wgtypes.GeneratePrivateKey(); err != nil {
		return err
	}
	r.srvIface, r.cliIface = r.s.Prefix+"rs", r.s.Prefix+"rc"
	conf := fmt.Sprintf("[Interface]\nPrivateKey = %s\nListenPort = %d\n\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n",
		r.srvKey, refPort, r.cliKey.PublicKey(), refCliIP)
	r.srvProc, err = r.startEnd(ctx, r.s.GW, r.srvIface, conf, refSrvIP)
	return err
}

// reference times the reference client as bench/tunnelbench does: from
// starting wireguard-go to the first reply of a 10 ms ping through it.
func (r *rig) reference(ctx context.Context) (time.Duration, error) {
	conf := fmt.Sprintf("[Interface]\nPrivateKey = %s\n\n[Peer]\nPublicKey = %s\nEndpoint = %s:%d\nAllowedIPs = 10.66.0.0/24\n",
		r.cliKey, r.srvKey.PublicKey(), lab.GWPublicIP4, refPort)
	start := time.Now()
	p, err := r.startEnd(ctx, r.s.Laptop, r.cliIface, conf, refCliIP)
	if err != nil {
		return 0, err
	}
	defer func() {
		p.Stop(5 * time.Second)
		for wgdev.InUse(r.cliIface) {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := r.s.Laptop.FirstReply(ctx, refSrvIP, 2*time.Millisecond); err != nil {
		return 0, fmt.Errorf("wireguard-go: %w\n%s", err, p.Log())
	}
	return time.Since(start), nil
}

func (r *rig) startEnd(ctx context.Context, n *lab.Node, iface, conf, addr string) (*lab.Proc, error) {
	return n.StartWireGuardGo(ctx, lab.WireGuardGo{Argv: []string{r.wgGo, "-f", iface},
		Iface: iface, Conf: conf, Dir: r.s.Dir, Addr: addr + "/24", Listening: wgdev.InUse})
}

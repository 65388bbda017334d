// Package lab builds small networks out of Linux network namespaces and veth
// pairs, runs real programs inside them (`ip netns exec`) and always tears
// them down again: on Close, when a test ends (NewT registers t.Cleanup), on
// SIGINT/SIGTERM, and, for runs that were killed outright, by a sweeper that
// the next lab runs first.
//
// Every namespace and interface name starts with a per-run prefix ("cp" and
// four hex digits) so parallel runs never collide; this matters beyond the
// namespaces because wireguard-go's UAPI sockets in /var/run/wireguard are
// shared by the whole machine.
//
// The lab never touches the machine's own network namespace: links are
// created directly inside their namespaces.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Lab is one set of namespaces, links and processes that live and die
// together.
type Lab struct {
	// Prefix starts every namespace, interface and UAPI socket name of this
	// lab ("cp1a2b"). Use it for names you create yourself (WireGuard
	// interfaces) so the sweeper recognises them.
	Prefix string
	// Dir holds process logs and any files the lab's programs need. It is
	// removed by Close unless CLEARPATH_LAB_KEEP is set.
	Dir string

	log  *slog.Logger
	opts Options

	mu       sync.Mutex
	nodes    []*Node
	procs    []*Proc
	extraLog []namedFile
	closers  []func()
	closed   bool
	keep     bool
	// closeDone is closed when Close has finished; later callers wait.
	closeDone chan struct{}
	closeErr  error
}

type namedFile struct{ name, path string }

// Prefixes are "cp" and four hex digits; node names are short so that
// prefix+node fits an interface name (15 bytes).
var (
	prefixRE   = regexp.MustCompile(`^cp[0-9a-f]{4}$`)
	nodeNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,8}$`)
	// nsRE matches the namespaces this package creates: <prefix>-<node>.
	nsRE = regexp.MustCompile(`^(cp[0-9a-f]{4})-[a-z][a-z0-9-]{0,8}$`)
)

// maxIfName is IFNAMSIZ-1.
const maxIfName = 15

// Options tune New.
type Options struct {
	// Prefix to use instead of a random one; must match cp[0-9a-f]{4}.
	Prefix string
	// Logger for what the lab does (default: discard).
	Logger *slog.Logger
	// NoSweep skips removing leftovers of dead runs.
	NoSweep bool
	// NarrowHop, when set, is the MTU of the reference topology's public
	// hop (host-gw), e.g. 1280 as on PPPoE, mobile or doubly tunnelled
	// paths; PMTUBlackHole makes host drop the ICMP "fragmentation
	// needed" and "packet too big" errors it would send for it, as broken
	// networks do: packets larger than the hop then vanish silently.
	NarrowHop     int
	PMTUBlackHole bool
}

// New creates an empty lab: a prefix nobody else holds, a directory, an
// owner record for the sweeper, and the interrupt handler. Callers must
// Close it.
func New(opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("lab: the ip command (iproute2) is not installed")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !opts.NoSweep {
		if err := Sweep(log); err != nil {
			log.Warn("sweeping leftovers of earlier runs", "err", err)
		}
	}
	l := &Lab{log: log, opts: opts, keep: os.Getenv("CLEARPATH_LAB_KEEP") != "", closeDone: make(chan struct{})}
	var err error
	for range 20 {
		p := opts.Prefix
		if p == "" {
			p = randomPrefix()
		} else if !prefixRE.MatchString(p) {
			return nil, fmt.Errorf("lab: prefix %q must look like cp1a2b", p)
		}
		if err = claimPrefix(p); err == nil {
			l.Prefix = p
			break
		}
		if opts.Prefix != "" {
			return nil, err
		}
	}
	if l.Prefix == "" {
		return nil, err
	}
	l.Dir, err = os.MkdirTemp("", dirPrefix+l.Prefix+"-")
	if err != nil {
		releasePrefix(l.Prefix)
		return nil, fmt.Errorf("lab: make dir: %w", err)
	}
	if err := recordDir(l.Prefix, l.Dir); err != nil {
		os.RemoveAll(l.Dir)
		releasePrefix(l.Prefix)
		return nil, err
	}
	register(l)
	log.Info("lab created", "prefix", l.Prefix, "dir", l.Dir)
	return l, nil
}

func randomPrefix() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return "cp" + hex.EncodeToString(b[:])
}

// Node is one network namespace.
type Node struct {
	// Name is the short name given to AddNode ("laptop").
	Name string
	// NS is the namespace name (<prefix>-<name>).
	NS  string
	lab *Lab
}

// Lab returns the lab the node belongs to.
func (n *Node) Lab() *Lab { return n.lab }

func (n *Node) String() string { return n.Name }

// Node returns the node called name, or nil.
func (l *Lab) Node(name string) *Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// AddNode creates a namespace with loopback up and IPv6 duplicate address
// detection off (so addresses are usable at once). name is 1-9 characters
// of [a-z0-9-], starting with a letter.
func (l *Lab) AddNode(name string) (*Node, error) {
	if !nodeNameRE.MatchString(name) {
		return nil, fmt.Errorf("lab: node name %q: want 1-9 chars of [a-z0-9-] starting with a letter", name)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab: closed")
	}
	for _, n := range l.nodes {
		if n.Name == name {
			l.mu.Unlock()
			return nil, fmt.Errorf("lab: node %q exists", name)
		}
	}
	n := &Node{Name: name, NS: l.Prefix + "-" + name, lab: l}
	// Recorded before it exists so Close removes it even if set-up fails
	// half way.
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()

	if _, err := run(context.Background(), "ip", "netns", "add", n.NS); err != nil {
		return nil, fmt.Errorf("lab: add node %s: %w", name, err)
	}
	if err := n.IP("link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	for _, k := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := n.Sysctl(k, "0"); err != nil {
			return nil, err
		}
	}
	l.log.Debug("node added", "node", name, "netns", n.NS)
	return n, nil
}

// Nodes returns the lab's nodes in creation order.
func (l *Lab) Nodes() []*Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.nodes)
}

// IP runs `ip -n <ns> args...`.
func (n *Node) IP(args ...string) error {
	_, err := run(context.Background(), "ip", append([]string{"-n", n.NS}, args...)...)
	if err != nil {
		return fmt.Errorf("lab: %s: %w", n.Name, err)
	}
	return nil
}

// Sysctl sets key (dotted, e.g. net.ipv4.ip_forward) to value inside the
// node's namespace.
func (n *Node) Sysctl(key, value string) error {
	_, err := n.Exec(context.Background(), "sysctl", "-qw", key+"="+value)
	return err
}

// Exec runs argv inside the node and returns its combined output. A
// non-zero exit is an error that quotes the output.
func (n *Node) Exec(ctx context.Context, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("lab: exec: empty command")
	}
	out, err := run(ctx, "ip", append([]string{"netns", "exec", n.NS}, argv...)...)
	if err != nil {
		return out, fmt.Errorf("in %s: %w", n.Name, err)
	}
	return out, nil
}

// Command returns an exec.Cmd that runs argv inside the node, for callers
// that need stdin, environment or separate streams. The command dies with
// this process (SIGKILL on parent death).
func (n *Node) Command(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NS}, argv...)...)
	cmd.SysProcAttr = procAttr()
	return cmd
}

// AddLogFile names a file (written by a program the lab did not start
// itself, such as a detached agent) to include in failure dumps.
func (l *Lab) AddLogFile(name, path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.extraLog = append(l.extraLog, namedFile{name, path})
}

// onClose registers f to run first thing in Close (in-process servers
// whose sockets live in the lab's namespaces).
func (l *Lab) onClose(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closers = append(l.closers, f)
}

// run runs a command in the current namespace and returns its combined
// output; errors quote the command and its output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = procAttr()
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	out := buf.String()
	if err != nil {
		msg := strings.TrimSpace(out)
		if msg != "" {
			msg = ": " + msg
		}
		return out, fmt.Errorf("%s %s: %w%s", name, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// Close stops every process, removes every namespace (and with them their
// links), stale WireGuard sockets carrying the prefix and the lab's
// directory. It is safe to call more than once and from several goroutines.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.closeDone
		return l.closeErr
	}
	l.closed = true
	procs := slices.Clone(l.procs)
	nodes := slices.Clone(l.nodes)
	closers := slices.Clone(l.closers)
	l.mu.Unlock()
	defer func() {
		unregister(l)
		close(l.closeDone)
	}()

	start := time.Now()
	var errs []error
	for _, f := range slices.Backward(closers) {
		f()
	}
	// Our own processes first, gracefully, so they can undo what they set
	// up (a gateway removes its devices).
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop(5 * time.Second)
		}()
	}
	wg.Wait()
	// Then anything else still running in our namespaces (a detached agent).
	for _, n := range nodes {
		killNamespacePids(n.NS, 3*time.Second)
	}
	for _, n := range nodes {
		if err := deleteNamespace(n.NS); err != nil {
			errs = append(errs, err)
		}
	}
	removeStaleSockets(l.Prefix)
	if !l.keep {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("lab: remove %s: %w", l.Dir, err))
		}
	}
	releasePrefix(l.Prefix)
	l.log.Info("lab closed", "prefix", l.Prefix, "took", time.Since(start).Round(time.Millisecond))
	l.closeErr = errors.Join(errs...)
	return l.closeErr
}

func deleteNamespace(ns string) error {
	defer removeEtcNetns(ns) // a node's own resolv.conf (resolv.go)
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := run(context.Background(), "ip", "netns", "delete", ns); err != nil {
		return fmt.Errorf("lab: delete namespace %s: %w", ns, err)
	}
	return nil
}

// RoutingState returns the node's routes (all tables) and policy rules,
// IPv4 and IPv6, as `ip` prints them: compare two calls to see whether
// anything changed.
func (n *Node) RoutingState(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, args := range [][]string{
		{"-4", "route", "show", "table", "all"},
		{"-6", "route", "show", "table", "all"},
		{"-4", "rule", "show"},
		{"-6", "rule", "show"},
	} {
		out, err := run(ctx, "ip", append([]string{"-n", n.NS}, args...)...)
		if err != nil {
			return "", fmt.Errorf("lab: %s: %w", n.Name, err)
		}
		fmt.Fprintf(&b, "# ip %s\n%s", strings.Join(args, " "), out)
	}
	return b.String(), nil
}

package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	netnsDir = "/run/netns"
	// ownerDir records which process owns each prefix; it is on tmpfs, like
	// /run/netns, so a reboot clears both together.
	ownerDir = "/run/clearpath-lab"
	// dirPrefix starts every lab directory's name in the temp dir.
	dirPrefix = "cplab-"
	wgSockDir = "/var/run/wireguard"
)

// owner is the record that lets a later run tell a live lab from a leftover.
type owner struct {
	Pid int `json:"pid"`
	// Start is the process start time (clock ticks since boot, from
	// /proc/<pid>/stat) so a recycled pid does not keep a leftover alive.
	Start uint64 `json:"start"`
	Dir   string `json:"dir,omitempty"`
}

func ownerPath(prefix string) string { return filepath.Join(ownerDir, prefix+".json") }

// claimPrefix records this process as the owner of prefix; it fails when
// the prefix is taken (by a live run or by a leftover not yet swept). The
// record appears atomically, complete, so a concurrent Sweep never sees a
// half-written one and takes a live lab for a dead one.
func claimPrefix(prefix string) error {
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(netnsDir, prefix+"-*")); len(matches) > 0 {
		return fmt.Errorf("lab: prefix %s in use by namespaces %v", prefix, matches)
	}
	tmp, err := writeTemp(owner{Pid: os.Getpid(), Start: startTime(os.Getpid())})
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// link fails if the name exists: an exclusive create of a full file.
	if err := os.Link(tmp, ownerPath(prefix)); err != nil {
		return fmt.Errorf("lab: claim prefix %s: %w", prefix, err)
	}
	return nil
}

func writeTemp(o owner) (string, error) {
	f, err := os.CreateTemp(ownerDir, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("lab: owner record: %w", err)
	}
	b, _ := json.Marshal(o)
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("lab: write owner record: %w", err)
	}
	return f.Name(), nil
}

func recordDir(prefix, dir string) error {
	tmp, err := writeTemp(owner{Pid: os.Getpid(), Start: startTime(os.Getpid()), Dir: dir})
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, ownerPath(prefix)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lab: owner record: %w", err)
	}
	return nil
}

func releasePrefix(prefix string) { os.Remove(ownerPath(prefix)) }

func readOwner(prefix string) (owner, bool) {
	b, err := os.ReadFile(ownerPath(prefix))
	if err != nil {
		return owner{}, false
	}
	var o owner
	if json.Unmarshal(b, &o) != nil {
		return owner{}, false
	}
	return o, true
}

// startTime returns field 22 of /proc/<pid>/stat, or 0 if the process is
// gone.
func startTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces and parentheses: split
	// after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func (o owner) alive() bool {
	if o.Pid <= 0 {
		return false
	}
	st := startTime(o.Pid)
	return st != 0 && st == o.Start
}

// Sweep removes what dead runs left behind: namespaces named like a lab's
// (<cpXXXX>-<node>) whose owner process is gone, the processes still
// running in them, their WireGuard sockets and their directories. Labs of
// live processes are left alone.
func Sweep(log *slog.Logger) error {
	unlock, err := lockSweep()
	if err != nil {
		return err
	}
	defer unlock()
	return sweepLocked(log)
}

// lockSweep serialises sweepers of all processes (parallel test packages
// each sweep when they create a lab), so two never fight over one leftover.
func lockSweep() (unlock func(), err error) {
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(ownerDir, ".sweep.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: sweep lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lab: sweep lock: %w", err)
	}
	return func() { f.Close() }, nil
}

func sweepLocked(log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prefixes := map[string][]string{} // prefix -> namespaces
	if ents, err := os.ReadDir(netnsDir); err == nil {
		for _, e := range ents {
			if m := nsRE.FindStringSubmatch(e.Name()); m != nil {
				prefixes[m[1]] = append(prefixes[m[1]], e.Name())
			}
		}
	}
	if ents, err := os.ReadDir(ownerDir); err == nil {
		for _, e := range ents {
			p, ok := strings.CutSuffix(e.Name(), ".json")
			if ok && prefixRE.MatchString(p) {
				if _, seen := prefixes[p]; !seen {
					prefixes[p] = nil
				}
			}
		}
	}
	var errs []error
	for p, nss := range prefixes {
		o, ok := readOwner(p)
		if ok && o.alive() {
			continue
		}
		log.Info("removing leftover lab", "prefix", p, "namespaces", nss, "owner_pid", o.Pid)
		for _, ns := range nss {
			killNamespacePids(ns, 2*time.Second)
		}
		for _, ns := range nss {
			if err := deleteNamespace(ns); err != nil {
				errs = append(errs, err)
			}
		}
		removeStaleSockets(p)
		if ok && o.Dir != "" && isLabDir(o.Dir) {
			os.RemoveAll(o.Dir)
		}
		releasePrefix(p)
	}
	return errors.Join(errs...)
}

// isLabDir guards RemoveAll against a corrupted record: only directories
// this package made in the temp dir qualify.
func isLabDir(dir string) bool {
	return filepath.Dir(dir) == filepath.Clean(os.TempDir()) && strings.HasPrefix(filepath.Base(dir), dirPrefix)
}

// namespacePids lists the processes whose network namespace is ns.
func namespacePids(ns string) []int {
	out, err := run(context.Background(), "ip", "netns", "pids", ns)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killNamespacePids sends SIGTERM to every process in ns, waits up to grace
// for them to exit, then SIGKILLs the rest.
func killNamespacePids(ns string, grace time.Duration) {
	pids := namespacePids(ns)
	if len(pids) == 0 {
		return
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if len(namespacePids(ns)) == 0 {
			return
		}
	}
	for _, pid := range namespacePids(ns) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Wait a little for the kernel to let go of the namespace.
	for range 40 {
		if len(namespacePids(ns)) == 0 {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// removeStaleSockets deletes WireGuard UAPI sockets named with prefix that
// no live process answers on.
func removeStaleSockets(prefix string) {
	socks, _ := filepath.Glob(filepath.Join(wgSockDir, prefix+"*.sock"))
	for _, s := range socks {
		c, err := net.DialTimeout("unix", s, 200*time.Millisecond)
		if err == nil {
			c.Close()
			continue
		}
		os.Remove(s)
	}
}

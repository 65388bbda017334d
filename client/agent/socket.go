package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/statedir"
)

// policy is who may do what on the control socket: root anything, members
// of the configured group what control.Policy allows them.
func (a *Agent) policy() (control.Policy, error) {
	pol := control.Policy{GroupName: a.cfg.Group, Server: a.memberServer}
	switch a.cfg.Group {
	case "-":
		pol.GroupName = "(none)"
		return pol, nil
	case "":
		pol.GroupName = control.DefaultGroup
	}
	if gid, err := strconv.ParseUint(pol.GroupName, 10, 32); err == nil {
		pol.Group, pol.HasGroup = uint32(gid), true
		return pol, nil
	}
	g, err := user.LookupGroup(pol.GroupName)
	if err != nil {
		if a.cfg.Group == "" {
			a.log.Info("no clearpath group: only root can use the agent (groupadd --system clearpath to let members)", "err", err)
			return pol, nil
		}
		return pol, fmt.Errorf("group %q: %w", a.cfg.Group, err)
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return pol, fmt.Errorf("group %q: gid %q", a.cfg.Group, g.Gid)
	}
	pol.Group, pol.HasGroup = uint32(gid), true
	return pol, nil
}

// memberServer is the server group members may connect to: --server, or
// the state dir's server file (written by the first root `up`).
func (a *Agent) memberServer() string {
	if a.cfg.Server != "" {
		return a.cfg.Server
	}
	b, err := statedir.ReadFile(filepath.Join(a.dir, ServerFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// rememberServer records server as the one members may use when root
// connects and none is configured yet.
func (a *Agent) rememberServer(server string) {
	if a.cfg.Server != "" || a.memberServer() != "" || server == "" {
		return
	}
	f, err := statedir.OpenFile(a.dir, ServerFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		a.log.Warn("cannot record the configured server", "err", err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, server)
	a.log.Info("server recorded for group members", "server", server, "file", f.Name())
}

// listen creates the control socket: its directory root's and not
// writable by others (created 0755 when missing, as /run/clearpath), the
// socket made under umask 0177 (never open to anyone even for an
// instant), then root:<group> 0660 when there is a group, else 0600.
func listen(sock string, pol control.Policy) (net.Listener, error) {
	dir := filepath.Dir(sock)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("socket dir: %w", err)
		}
	}
	if os.Geteuid() == 0 {
		if err := statedir.Check(dir); err != nil {
			return nil, fmt.Errorf("socket dir: %w", err)
		}
	}
	if fi, err := os.Lstat(sock); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket: remove it", sock)
		}
		os.Remove(sock) // left by a killed agent; the lock proves none runs
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", sock)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	if pol.HasGroup && os.Geteuid() == 0 {
		if err := os.Lchown(sock, 0, int(pol.Group)); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket group: %w", err)
		}
		if err := os.Chmod(sock, 0o660); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket mode: %w", err)
		}
	}
	return ln, nil
}

package doctor

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/version"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// agentLogTail is how much of the end of the agent's log a bundle keeps.
const agentLogTail = 256 << 10

// bundleFile is one file of a support bundle.
type bundleFile struct {
	name string
	data []byte
}

// writeBundle writes `vpn doctor --bundle FILE`: a gzipped tar of the
// report, the route and rule snapshot, the agent's status and the end of
// its log, and the versions, every file passed through the redactor. The
// file is created new (never over an existing file or a symlink) with
// mode 0600.
func writeBundle(path string, env *Env, rep analysis.Report, in analysis.Input, st *control.Status, now time.Time) (string, error) {
	words := []string{os.Getenv("USER"), os.Getenv("SUDO_USER"), os.Getenv("LOGNAME")}
	if u, err := user.Current(); err == nil {
		words = append(words, u.Username, u.Name)
	}
	if h, err := os.Hostname(); err == nil {
		words = append(words, h, strings.Split(h, ".")[0])
	}
	if st != nil {
		words = append(words, st.User, st.Email, st.DeviceID)
		if st.Login != nil {
			words = append(words, st.Login.User)
		}
	}
	r := newRedactor(words...)

	var files []bundleFile
	add := func(name string, b []byte) { files = append(files, bundleFile{name, r.Bytes(b)}) }
	addJSON := func(name string, v any) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		add(name, append(b, '\n'))
		return nil
	}
	if err := addJSON("report.json", rep); err != nil {
		return "", err
	}
	var txt bytes.Buffer
	Print(&txt, rep)
	add("report.txt", txt.Bytes())
	if err := addJSON("snapshot.json", in.Snapshot); err != nil {
		return "", err
	}
	if st != nil {
		if err := addJSON("status.json", st); err != nil {
			return "", err
		}
	} else {
		add("status.json", []byte(`{"state": "no agent answered"}`+"\n"))
	}
	if env.AgentLog != nil {
		if b, err := env.AgentLog(); err != nil {
			add("agent.log", []byte(fmt.Sprintf("(agent log not included: %v)\n", err)))
		} else {
			add("agent.log", b)
		}
	}
	var v strings.Builder
	fmt.Fprintf(&v, "vpn %s\n%s %s/%s\n", version.String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		fmt.Fprintf(&v, "kernel %s", k)
	}
	if st != nil {
		fmt.Fprintf(&v, "agent %s\ngateway %s\n", st.AgentVersion, st.GatewayVersion)
	}
	add("versions.txt", []byte(v.String()))
	files = append([]bundleFile{{"README.txt", []byte(fmt.Sprintf("ClearPath support bundle, %s (vpn doctor --bundle)\n%s.\n"+
		"Files: report.json/.txt (the doctor report), snapshot.json (routes, rules, links, addresses; loads with vpn doctor --snapshot), "+
		"status.json (the agent's status), agent.log (its last %d KiB), versions.txt.\n", now.UTC().Format(time.RFC3339), r.summary(), agentLogTail>>10))}}, files...)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("--bundle %s: the file exists; give a new file name (a bundle never overwrites)", path)
	}
	if err != nil {
		return "", fmt.Errorf("--bundle: %w", err)
	}
	if err := writeTarGz(f, files, now); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("--bundle %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("--bundle %s: %w", path, err)
	}
	return r.summary(), nil
}

func writeTarGz(w io.Writer, files []bundleFile, now time.Time) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		// internal/tstest/bundletest reads this layout back.
		if err := tw.WriteHeader(&tar.Header{Name: "clearpath-bundle/" + f.name, Mode: 0o600, Size: int64(len(f.data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// tailFile reads the last n bytes of path, from a line start.
func tailFile(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b, nil
}

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/clearpath-vpn/clearpath/server/admin"
)

// listenAdmin opens the admin socket (0600 in a 0700 directory when we
// create it). A socket file left by a dead gateway is replaced; one a live
// gateway serves is an error.
func (g *Gateway) listenAdmin(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin_socket %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("admin_socket %s: another gateway is running with it", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin_socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin_socket %s: %w", path, err)
	}
	return ln, nil
}

type connKey struct{}

// adminServer serves the admin socket; each request knows the uid of the
// process on the other end (SO_PEERCRED), for the audit log.
func (g *Gateway) adminServer() *http.Server {
	return &http.Server{
		Handler:           g.adminMux(),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
}

// peerUser names the local user behind an admin socket request.
func peerUser(r *http.Request) string {
	c, ok := r.Context().Value(connKey{}).(*net.UnixConn)
	if !ok {
		return "unknown"
	}
	uid, ok := peerUID(c)
	if !ok {
		return "unknown"
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}

func (g *Gateway) adminMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+admin.PathReload, func(w http.ResponseWriter, r *http.Request) {
		res, err := g.Reload(r.Context(), peerUser(r), "admin socket")
		if err != nil {
			adminJSON(w, http.StatusUnprocessableEntity, admin.Error{Error: err.Error()})
			return
		}
		adminJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST "+admin.PathSync, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		removed, err := g.life.Sync(r.Context())
		if err != nil {
			adminJSON(w, http.StatusServiceUnavailable, admin.Error{Error: err.Error()})
			return
		}
		adminJSON(w, http.StatusOK, admin.SyncResult{Removed: removed, Took: time.Since(start).String()})
	})
	mux.HandleFunc("GET "+admin.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		st := admin.Status{ConfigPath: g.configPath}
		count := map[string]int{}
		for _, t := range g.life.Tracked() {
			count[t.Peer.Network]++
		}
		g.reloadMu.RLock()
		for _, n := range g.cfg.Networks {
			st.Networks = append(st.Networks, admin.NetworkStatus{Name: n.Name, Interface: n.Interface, Peers: count[n.Name]})
		}
		g.reloadMu.RUnlock()
		if _, err := g.life.StoreStatus(); err != nil {
			st.StoreError = err.Error()
		}
		adminJSON(w, http.StatusOK, st)
	})
	return mux
}

func adminJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

var errNoConfigPath = errors.New("the gateway was started without a configuration file path; restart it to change the configuration")

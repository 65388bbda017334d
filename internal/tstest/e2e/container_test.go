package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// The gateway's container image (deploy/docker/Dockerfile, built here FROM
// scratch with podman from the e2e binary) serves the lab: the container
// joins the lab gateway's network namespace (podman --network ns:, no
// bridge, nothing on the machine's own network), runs with cap_drop ALL
// plus the unit's four capabilities, /dev/net/tun and a read-only root;
// forwarding is switched on in the namespace beforehand, as compose's
// sysctls do. Alice's vpn up reaches vpc-a through it, and the image's
// HEALTHCHECK (vpn-gateway health) passes inside the container.
func TestGatewayContainerServes(t *testing.T) {
	lab.SkipUnlessRoot(t)
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman not installed (apt-get install -y podman): the gateway image is not built or run")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed (apt-get install -y runc): crun cannot run containers on this machine's hybrid cgroups")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ref := lab.ReferenceT(t, lab.Options{})
	s, name := startContainerGateway(t, ctx, podman, ref)
	e := envOn(t, ref, s)
	if out, err := exec.CommandContext(ctx, podman, "--runtime", "runc", "healthcheck", "run", name).CombinedOutput(); err != nil {
		t.Errorf("podman healthcheck run (vpn-gateway health in the container): %v\n%s", err, out)
	}
	if out, err := exec.CommandContext(ctx, podman, "inspect", "--format", "{{.Config.User}}|{{.HostConfig.ReadonlyRootfs}}|{{.EffectiveCaps}}", name).CombinedOutput(); err == nil {
		t.Logf("container user|read-only|caps: %s", strings.TrimSpace(string(out)))
	}
	alice := e.Client("alice")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok)
	v4, _ := tunnelAddrs(t, alice)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("vpc-a saw %s through the container gateway, want %s", got, v4)
	}
	e.unreachable(t, vpcB4, "vpc-b is not engineering's")
	down(t, alice)
	if err := s.StopGateway(); err != nil {
		t.Logf("stop: %v", err)
	}
}

// startContainerGateway builds the gateway's image from this run's binary
// (as make image does) and starts the lab's gateway from it: the
// container joins the gw namespace with the unit's four capabilities, a
// read-only root and /dev/net/tun. It returns the stack and the
// container's name.
func startContainerGateway(t *testing.T, ctx context.Context, podman string, ref *lab.Reference) (*stack.Stack, string) {
	t.Helper()
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}

	// The image, as make image builds it, from this run's binary.
	bctx := t.TempDir()
	for _, c := range [][2]string{
		{bins.Gateway, "vpn-gateway"}, {"/etc/ssl/certs/ca-certificates.crt", "ca-certificates.crt"},
		{filepath.Join(root, "deploy/docker/Dockerfile"), "Dockerfile"},
	} {
		if out, err := exec.Command("cp", c[0], filepath.Join(bctx, c[1])).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v %s", c[0], err, out)
		}
	}
	if out, err := exec.Command(bins.Gateway, "init").Output(); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(filepath.Join(bctx, "gateway.yaml.example"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	image := "localhost/clearpath/gateway:e2e-" + ref.Prefix
	start := time.Now()
	if out, err := exec.CommandContext(ctx, podman, "build", "--format", "docker", "-t", image, bctx).CombinedOutput(); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", image).Run() })
	t.Logf("podman build: %s", time.Since(start).Round(time.Millisecond))

	for _, s := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"} {
		if _, err := ref.GW.Exec(ctx, "sysctl", "-w", s); err != nil {
			t.Fatal(err)
		}
	}
	name := "clearpath-e2e-" + ref.Prefix
	// The lab starts `<gateway> serve --config <lab dir>/gateway.yaml` in
	// the gw namespace: the wrapper runs the image there instead, with the
	// lab dir (config, SQLite store, state) at the same path. Fitted to
	// this build machine: podman runs in this test's mount namespace (`ip
	// netns exec` mounts a /sys without cgroups), with runc (crun refuses
	// its hybrid cgroups), ulimits under the sandbox's hard limits, and no
	// health timer (no systemd; the check is run by hand below). The
	// image's own health check asks the loopback metrics listener
	// (127.0.0.1:9587, plain http while the API serves TLS).
	wrapper := filepath.Join(t.TempDir(), "vpn-gateway")
	script := fmt.Sprintf(`#!/bin/sh
exec nsenter --mount=/proc/%[1]d/ns/mnt --net=/proc/%[1]d/ns/net -- %s --runtime runc --cgroup-manager=cgroupfs run \
	--ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --health-interval=disable \
	--rm --name %s --network ns:/var/run/netns/%s \
	--cap-drop ALL --cap-add NET_ADMIN --cap-add BPF --cap-add PERFMON --cap-add NET_BIND_SERVICE \
	--security-opt no-new-privileges --read-only --tmpfs /tmp --tmpfs /var/run \
	--device /dev/net/tun -v %s:%s %s "$@"
`, os.Getpid(), podman, name, ref.GW.NS, ref.Dir, ref.Dir, image)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command(podman, "rm", "-f", name).Run() })
	inContainer := bins
	inContainer.Gateway = wrapper
	s, err := stack.Start(ctx, ref, inContainer)
	if err != nil {
		t.Fatalf("gateway container: %v", err)
	}
	return s, name
}

package control

// DNSStatus is the split DNS of the session (Status.DNS): what the gateway
// pushed and what the agent made of it.
type DNSStatus struct {
	// Servers and Domains are what the gateway pushed.
	Servers []string `json:"servers"`
	Domains []string `json:"domains,omitempty"`
	// Mode: "stub" (the agent's stub resolver answers; resolv.conf points
	// at it), "resolved" (set on the tunnel link in systemd-resolved),
	// "resolver" (macOS: a file per domain in the ResolvConf directory),
	// "off" (pushed but not used; Note says why).
	Mode string `json:"mode"`
	// All: every name goes to Servers (no domains, all traffic captured).
	All bool `json:"all,omitempty"`
	// Stub is the stub's address; Upstream the servers resolv.conf named
	// before, which answer every name outside Domains.
	Stub       string   `json:"stub,omitempty"`
	Upstream   []string `json:"upstream,omitempty"`
	ResolvConf string   `json:"resolv_conf,omitempty"`
	Note       string   `json:"note,omitempty"`
	// Queries answered through the tunnel, by the upstream servers, and
	// failed (SERVFAIL), since the stub started.
	ViaTunnel   int64 `json:"queries_tunnel"`
	ViaUpstream int64 `json:"queries_upstream"`
	Failed      int64 `json:"queries_failed"`
}

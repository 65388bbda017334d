package config

import "time"

// DefaultIdlePeerTimeout is how long a peer may be idle (no handshake and
// no traffic) before the gateway takes it off its WireGuard device. Five
// minutes is past wireguard-go's RejectAfterTime (180 s): a client idle
// that long holds no usable session, so its next packet starts with a
// handshake initiation, which puts it back on the device before that
// initiation is answered. Connected clients send a keepalive every 25 s
// and are never idle this long. (Tailscale trims idle peers after 5
// minutes too.)
const DefaultIdlePeerTimeout = 5 * time.Minute

// IdlePeers returns idle_peer_timeout (DefaultIdlePeerTimeout when unset).
func (c *Config) IdlePeers() time.Duration {
	if c.IdlePeerTimeout == 0 {
		return DefaultIdlePeerTimeout
	}
	return c.IdlePeerTimeout
}

func (c *Config) validatePeers(bad func(field, format string, args ...any)) {
	if d := c.IdlePeerTimeout; d != 0 && (d < time.Second || d > 24*time.Hour) {
		bad("idle_peer_timeout", "%s is outside 1s-24h (below 3m a returning client may wait up to 15 s for its handshake retry)", d)
	}
}

package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/server/audit"
	"github.com/clearpath-vpn/clearpath/server/lifecycle"
	"github.com/clearpath-vpn/clearpath/server/notify"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// onLifecycleEvent turns what the lifecycle manager saw into an audit entry,
// a webhook delivery and metrics. It runs on the manager's event goroutine.
func (g *Gateway) onLifecycleEvent(e lifecycle.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := e.Peer
	who := p.Email
	if who == "" {
		who = p.Subject
	}
	host := p.Hostname
	if host == "" {
		host = "unnamed device"
	}
	rec := store.AuditRecord{Time: e.At, Actor: "gateway", Subject: p.Subject, Email: p.Email, Network: p.Network, PeerID: p.ID, Remote: e.Remote}
	ev := notify.Event{Time: e.At, Gateway: g.host, User: p.Subject, Email: p.Email, Network: p.Network, PeerID: p.ID,
		Hostname: p.Hostname, PublicKey: p.PublicKey, ExpiresAt: p.ExpiresAt.UTC(), Reason: e.Reason}
	for _, a := range []netip.Addr{p.Addr.V4, p.Addr.V6} {
		if a.IsValid() {
			ev.Addresses = append(ev.Addresses, a.String())
		}
	}
	if !e.LastHandshake.IsZero() {
		hs := e.LastHandshake.UTC()
		ev.LastHandshake = &hs
	}
	expires := p.ExpiresAt.UTC().Format(time.RFC3339)
	switch e.Kind {
	case lifecycle.KindExpiring:
		rec.Action = audit.Warn
		rec.Detail = fmt.Sprintf("expiring: key of %s expires in %s, at %s", host, e.Lead, expires)
		ev.Event, ev.Lead = notify.PeerExpiring, e.Lead.String()
		ev.Message = fmt.Sprintf("The VPN key of %s on %s (network %s) expires in %s, at %s. Run `vpn up` again to renew it.", who, host, p.Network, e.Lead, expires)
	case lifecycle.KindUnused:
		rec.Action = audit.Warn
		rec.Detail = fmt.Sprintf("unused: no handshake since registration at %s", p.CreatedAt.UTC().Format(time.RFC3339))
		ev.Event = notify.PeerUnused
		ev.Message = fmt.Sprintf("The VPN key of %s on %s (network %s), registered at %s, was never used.", who, host, p.Network, p.CreatedAt.UTC().Format(time.RFC3339))
	case lifecycle.KindIdle:
		rec.Action = audit.Warn
		rec.Detail = fmt.Sprintf("idle: silent since %s", e.Since.UTC().Format(time.RFC3339))
		ev.Event = notify.PeerIdle
		ev.Message = fmt.Sprintf("The VPN key of %s on %s (network %s) has been idle since %s.", who, host, p.Network, e.Since.UTC().Format(time.RFC3339))
	case lifecycle.EventExpired:
		rec.Action = audit.Expire
		rec.Detail = fmt.Sprintf("key of %s expired at %s; removed from the device %s later", host, expires, e.Latency.Round(time.Millisecond))
		if e.Reason != "" {
			rec.Detail += " (" + e.Reason + ")"
		}
		ev.Event = notify.PeerExpired
		ev.Message = fmt.Sprintf("The VPN key of %s on %s (network %s) expired at %s. Run `vpn up` to register again.", who, host, p.Network, expires)
		g.metrics.ExpiryLateness.Observe(max(e.Latency, 0).Seconds())
	case lifecycle.EventRevoked:
		rec.Action = audit.Revoke
		if e.Actor != "" {
			rec.Actor = e.Actor
		}
		rec.Detail = fmt.Sprintf("key of %s revoked: %s", host, e.Reason)
		ev.Event = notify.PeerRevoked
		ev.Message = fmt.Sprintf("The VPN key of %s on %s (network %s) was revoked: %s.", who, host, p.Network, e.Reason)
	case lifecycle.EventFreed:
		// No webhook: the user lost nothing they still had.
		rec.Action = audit.Free
		rec.Detail = fmt.Sprintf("addresses %s of device %s (%s) freed: %s, grace period over", strings.Join(ev.Addresses, " "), p.Device, host, e.Reason)
		g.audit.Record(ctx, rec)
		return
	default:
		g.log.Warn("unknown lifecycle event", "kind", e.Kind)
		return
	}
	g.metrics.Events.WithLabelValues(e.Kind).Inc()
	if !e.Recorded {
		g.audit.Record(ctx, rec)
	} else {
		g.log.Info("peer removed from the device", "event", e.Kind, "peer", p.ID, "user", who, "network", p.Network, "reason", e.Reason)
	}
	g.webhook().Send(ev)
}

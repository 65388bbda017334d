package lifecycle

import (
	"strconv"
	"testing"
	"time"
)

func keys(ws []Warning) (send, mark []string) {
	for _, w := range ws {
		if w.Send {
			send = append(send, w.Key)
		} else {
			mark = append(mark, w.Key)
		}
	}
	return send, mark
}

func TestDue(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s := Settings{WarnBefore: []time.Duration{72 * time.Hour, 24 * time.Hour, time.Hour}, UnusedAfter: 24 * time.Hour, IdleAfter: 7 * 24 * time.Hour}
	p := PeerTimes{Created: t0, Expires: t0.Add(30 * 24 * time.Hour)}
	none := func(string) bool { return false }
	cases := []struct {
		name       string
		p          PeerTimes
		sent       func(string) bool
		at         time.Time
		send, mark []string
	}{
		{"fresh key", p, none, t0.Add(time.Hour), nil, nil},
		{"never used for a day", p, none, t0.Add(24 * time.Hour), []string{"unused"}, nil},
		{"unused already sent", p, func(k string) bool { return k == "unused" }, t0.Add(48 * time.Hour), nil, nil},
		{"used key is not unused", PeerTimes{Created: t0, Expires: p.Expires, LastHandshake: t0.Add(time.Minute), LastActive: t0.Add(time.Minute)}, none, t0.Add(48 * time.Hour), nil, nil},
		{"idle for a week", PeerTimes{Created: t0, Expires: p.Expires, LastHandshake: t0, LastActive: t0.Add(time.Hour)}, none, t0.Add(time.Hour + 7*24*time.Hour), []string{"idle:" + itoa(t0.Add(time.Hour).Unix())}, nil},
		{"active is not idle", PeerTimes{Created: t0, Expires: p.Expires, LastHandshake: t0, LastActive: t0.Add(6 * 24 * time.Hour)}, none, t0.Add(7 * 24 * time.Hour), nil, nil},
		{"72h before expiry", PeerTimes{Created: t0, Expires: p.Expires, LastHandshake: t0, LastActive: p.Expires.Add(-100 * time.Hour)}, none, p.Expires.Add(-72 * time.Hour), []string{"expiring:72h0m0s"}, nil},
		{"after a gateway outage only the most urgent goes out", PeerTimes{Created: t0, Expires: p.Expires, LastHandshake: t0, LastActive: p.Expires.Add(-2 * time.Hour)}, none, p.Expires.Add(-30 * time.Minute),
			[]string{"expiring:1h0m0s"}, []string{"expiring:24h0m0s", "expiring:72h0m0s"}},
		{"less urgent than one already sent is only marked", PeerTimes{Created: t0, Expires: p.Expires, LastHandshake: t0, LastActive: p.Expires.Add(-time.Hour)},
			func(k string) bool { return k == "expiring:24h0m0s" }, p.Expires.Add(-30 * time.Minute), []string{"expiring:1h0m0s"}, []string{"expiring:72h0m0s"}},
		{"nothing at or after expiry", p, none, p.Expires, nil, nil},
	}
	for _, c := range cases {
		send, mark := keys(Due(s, c.p, c.sent, c.at))
		if !equal(send, c.send) || !equal(mark, c.mark) {
			t.Errorf("%s: send %v mark %v, want send %v mark %v", c.name, send, mark, c.send, c.mark)
		}
	}
	// Off means off.
	off := Settings{}
	if ws := Due(off, p, none, t0.Add(29*24*time.Hour)); len(ws) != 0 {
		t.Errorf("no settings, got %v", ws)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

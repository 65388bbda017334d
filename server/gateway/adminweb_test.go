package gateway

import (
	"testing"
)

func TestSummariseFlows(t *testing.T) {
	log := []byte(`{"user":"alice@example.com","dst":"10.10.0.10","proto":"tcp","dport":5432,"bytes":100,"reply_bytes":900,"verdict":"allow","last_seen":"2026-12-06T10:00:00Z"}
{"user":"alice@example.com","dst":"10.10.0.10","proto":"tcp","dport":5432,"bytes":50,"reply_bytes":50,"verdict":"allow","last_seen":"2026-12-06T11:00:00Z"}
{"user":"alice@example.com","dst":"10.20.0.1","proto":"udp","dport":53,"bytes":60,"verdict":"deny"}
not json
{"user":"bob@example.com","dst":"fd10::1","proto":"icmpv6","bytes":5000,"verdict":"allow"}
`)
	s := summariseFlows(log, "")
	if len(s.Users) != 2 || s.Users[0].User != "alice@example.com" || s.Users[0].Allowed != 2 || s.Users[0].Denied != 1 || s.Users[0].Bytes != 210 || s.Users[0].ReplyBytes != 950 {
		t.Fatalf("users: %+v", s.Users)
	}
	if s.Users[0].LastSeen.Hour() != 11 {
		t.Errorf("last seen %v", s.Users[0].LastSeen)
	}
	if len(s.Top) != 3 || s.Top[0].User != "bob@example.com" || s.Top[1].Dst != "10.10.0.10:5432" || s.Top[1].Flows != 2 || s.Top[1].Bytes != 1100 || s.Top[2].Verdict != "deny" {
		t.Fatalf("top: %+v", s.Top)
	}
	if s := summariseFlows(log, "ALICE@example.com"); len(s.Users) != 1 {
		t.Errorf("filter by user: %+v", s.Users)
	}
}

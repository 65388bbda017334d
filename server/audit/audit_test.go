package audit

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/testpg"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Entries recorded while PostgreSQL is down are written, in order and with
// their own times, once it is back.
func TestEntriesSurviveAnUnreachableStore(t *testing.T) {
	pg := testpg.StartServer(t)
	ctx := context.Background()
	st, err := store.Open(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := New(st, slog.New(slog.DiscardHandler))
	var seen []string
	l.OnRecord = func(r store.AuditRecord) { seen = append(seen, r.Action) }
	l.Record(ctx, store.AuditRecord{Actor: "a", Action: Register, Subject: "a"})
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now().Add(-time.Hour).Truncate(time.Second)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	l.Record(qctx, store.AuditRecord{Time: t1, Actor: "gateway", Action: Expire, Subject: "a"})
	l.Record(qctx, store.AuditRecord{Actor: "gateway", Action: Warn, Subject: "b"})
	cancel()
	if l.Pending() != 2 {
		t.Fatalf("pending = %d while the store is down, want 2", l.Pending())
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Pending() > 0 && time.Now().Before(deadline) {
		l.Flush(ctx)
		time.Sleep(100 * time.Millisecond)
	}
	got, err := st.QueryAudit(ctx, store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1].Action != Expire || !got[1].Time.Equal(t1) || got[2].Action != Warn {
		t.Fatalf("after the store came back: %+v", got)
	}
	if len(seen) != 3 {
		t.Errorf("OnRecord saw %v", seen)
	}
}

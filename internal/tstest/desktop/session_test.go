//go:build linux

package desktop

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// The session comes up with a tray bar along the bottom and nothing in it,
// and records a notification sent the way applications send them.
func TestSessionBarAndNotifications(t *testing.T) {
	s := StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	shot, err := s.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := shot.Bounds(); b.Dx() != Width || b.Dy() != Height {
		t.Fatalf("screen is %v, want %dx%d", b, Width, Height)
	}
	bar := shot.At(Width/2, Height-BarHeight/2)
	if far(bar, parseHex(BarColor), 24) {
		t.Fatalf("no tray bar at the bottom: pixel %v, want %s", bar, BarColor)
	}
	if r := TrayIcons(shot); !r.Empty() {
		t.Fatalf("an empty tray shows something at %v", r)
	}

	app, err := dbus.Connect(s.BusAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var id uint32
	err = app.Object("org.freedesktop.Notifications", "/org/freedesktop/Notifications").CallWithContext(ctx,
		"org.freedesktop.Notifications.Notify", 0, "test-app", uint32(0), "", "Hello", "from a test",
		[]string{}, map[string]dbus.Variant{}, int32(5000)).Store(&id)
	if err != nil || id == 0 {
		t.Fatalf("Notify: id %d, %v", id, err)
	}
	if n := s.Notifications(); len(n) != 1 || n[0].App != "test-app" || n[0].Summary != "Hello" || n[0].Body != "from a test" {
		t.Fatalf("recorded %+v", n)
	}
}

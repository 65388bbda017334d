//go:build linux

package desktop

import (
	"fmt"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// Notification is one desktop notification an application sent.
type Notification struct {
	App, Summary, Body string
	At                 time.Time
}

// notifyServer implements org.freedesktop.Notifications (the calls
// applications make) and records every notification.
type notifyServer struct {
	mu   sync.Mutex
	list []Notification
	next uint32
}

const (
	notifyName = "org.freedesktop.Notifications"
	notifyPath = dbus.ObjectPath("/org/freedesktop/Notifications")
)

func (n *notifyServer) export(conn *dbus.Conn) error {
	if err := conn.Export(n, notifyPath, notifyName); err != nil {
		return fmt.Errorf("desktop: export notifications: %w", err)
	}
	reply, err := conn.RequestName(notifyName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("desktop: own %s: %v (reply %v)", notifyName, err, reply)
	}
	return nil
}

// Notify is org.freedesktop.Notifications.Notify.
func (n *notifyServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, Notification{App: app, Summary: summary, Body: body, At: time.Now()})
	n.next++
	return n.next, nil
}

// GetCapabilities is org.freedesktop.Notifications.GetCapabilities.
func (n *notifyServer) GetCapabilities() ([]string, *dbus.Error) { return []string{"body"}, nil }

// GetServerInformation is org.freedesktop.Notifications.GetServerInformation.
func (n *notifyServer) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "clearpath-desktop-test", "clearpath", "1", "1.2", nil
}

// CloseNotification is org.freedesktop.Notifications.CloseNotification.
func (n *notifyServer) CloseNotification(uint32) *dbus.Error { return nil }

// Notifications returns what was notified so far.
func (s *Session) Notifications() []Notification {
	s.notes.mu.Lock()
	defer s.notes.mu.Unlock()
	return append([]Notification(nil), s.notes.list...)
}

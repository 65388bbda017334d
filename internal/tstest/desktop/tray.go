//go:build linux

package desktop

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
)

// D-Bus names of the StatusNotifier protocol and of dbusmenu.
const (
	WatcherName   = "org.kde.StatusNotifierWatcher"
	WatcherPath   = dbus.ObjectPath("/StatusNotifierWatcher")
	ItemInterface = "org.kde.StatusNotifierItem"
	MenuInterface = "com.canonical.dbusmenu"
)

// Item is an application's tray icon as the watcher knows it.
type Item struct {
	s       *Session
	Service string
	Path    dbus.ObjectPath
	Menu    dbus.ObjectPath
}

// WaitItem waits until the process pid has a tray item registered with the
// watcher and returns it.
func (s *Session) WaitItem(ctx context.Context, pid int) (*Item, error) {
	watcher := s.bus.Object(WatcherName, WatcherPath)
	var last error
	for {
		v, err := watcher.GetProperty(WatcherName + ".RegisteredStatusNotifierItems")
		if err == nil {
			items, _ := v.Value().([]string)
			for _, it := range items {
				svc, path := splitItem(it)
				var owner uint32
				if err := s.bus.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixProcessID", 0, svc).Store(&owner); err != nil {
					last = err
					continue
				}
				if int(owner) != pid {
					continue
				}
				item := &Item{s: s, Service: svc, Path: path}
				mv, err := s.bus.Object(svc, path).GetProperty(ItemInterface + ".Menu")
				if err != nil {
					return nil, fmt.Errorf("desktop: tray item %s has no menu: %w", it, err)
				}
				item.Menu, _ = mv.Value().(dbus.ObjectPath)
				return item, nil
			}
			last = fmt.Errorf("registered items %q, none of pid %d", items, pid)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("desktop: no tray item of pid %d: %v (%w)", pid, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// splitItem parses a watcher entry: "service/path" or a bare service
// (path /StatusNotifierItem).
func splitItem(s string) (string, dbus.ObjectPath) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], dbus.ObjectPath(s[i:])
	}
	return s, "/StatusNotifierItem"
}

// MenuItem is one entry of a dbusmenu layout.
type MenuItem struct {
	ID        int32
	Label     string
	Enabled   bool
	Visible   bool
	Separator bool
	// Toggle is "checkmark", "radio" or ""; Checked its state.
	Toggle   string
	Checked  bool
	Children []MenuItem
}

// String renders the item as tests print menus: "(label)" when disabled,
// "--" for separators.
func (m MenuItem) String() string {
	switch {
	case m.Separator:
		return "--"
	case !m.Enabled:
		return "(" + m.Label + ")"
	}
	return m.Label
}

// Layout reads the item's menu (com.canonical.dbusmenu.GetLayout from the
// root, all levels).
func (it *Item) Layout(ctx context.Context) ([]MenuItem, error) {
	var rev uint32
	var root layout
	err := it.s.bus.Object(it.Service, it.Menu).CallWithContext(ctx, MenuInterface+".GetLayout", 0, int32(0), int32(-1), []string{}).Store(&rev, &root)
	if err != nil {
		return nil, fmt.Errorf("desktop: GetLayout: %w", err)
	}
	return root.children()
}

type layout struct {
	ID       int32
	Props    map[string]dbus.Variant
	Children []dbus.Variant
}

func (l layout) children() ([]MenuItem, error) {
	out := make([]MenuItem, 0, len(l.Children))
	for _, c := range l.Children {
		// Each child is a variant holding the (ia{sv}av) struct, which
		// godbus decodes as []interface{}.
		var sub layout
		if err := dbus.Store([]interface{}{c.Value()}, &sub); err != nil {
			return nil, fmt.Errorf("desktop: menu layout child: %w", err)
		}
		mi := MenuItem{ID: sub.ID, Enabled: true, Visible: true}
		for k, v := range sub.Props {
			switch k {
			case "label":
				mi.Label, _ = v.Value().(string)
			case "enabled":
				mi.Enabled, _ = v.Value().(bool)
			case "visible":
				mi.Visible, _ = v.Value().(bool)
			case "type":
				mi.Separator = v.Value() == "separator"
			case "toggle-type":
				mi.Toggle, _ = v.Value().(string)
			case "toggle-state":
				n, _ := v.Value().(int32)
				mi.Checked = n == 1
			}
		}
		kids, err := sub.children()
		if err != nil {
			return nil, err
		}
		mi.Children = kids
		out = append(out, mi)
	}
	return out, nil
}

// Labels renders a menu as one line, " | " between items.
func Labels(items []MenuItem) string {
	parts := make([]string, 0, len(items))
	for _, m := range items {
		if m.Visible {
			parts = append(parts, m.String())
		}
	}
	return strings.Join(parts, " | ")
}

// Find returns the first visible item (at any level) whose label starts
// with prefix, not inside a word: "Log out" finds "Log out
// alice@example.com" and "ClearPath: " finds "ClearPath: Connected", but
// "Connect" does not find "Connection options".
func Find(items []MenuItem, prefix string) (MenuItem, bool) {
	return find(items, func(l string) bool {
		rest, ok := strings.CutPrefix(l, prefix)
		if !ok {
			return false
		}
		// A prefix ending inside a word must end the label's word too.
		last, _ := utf8.DecodeLastRuneInString(prefix)
		next, _ := utf8.DecodeRuneInString(rest)
		return rest == "" || !word(last) || !word(next)
	})
}

func word(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func find(items []MenuItem, match func(string) bool) (MenuItem, bool) {
	for _, m := range items {
		if m.Visible && !m.Separator && match(m.Label) {
			return m, true
		}
		if c, ok := find(m.Children, match); ok {
			return c, true
		}
	}
	return MenuItem{}, false
}

// ErrDisabled is returned when clicking an item that is disabled.
var ErrDisabled = errors.New("menu item is disabled")

// Click sends "clicked" for the enabled item whose label starts with
// prefix, as a tray host does when the user picks it.
func (it *Item) Click(ctx context.Context, prefix string) error {
	items, err := it.Layout(ctx)
	if err != nil {
		return err
	}
	m, ok := Find(items, prefix)
	if !ok {
		return fmt.Errorf("desktop: no menu item %q in: %s", prefix, Labels(items))
	}
	if !m.Enabled {
		return fmt.Errorf("desktop: %q: %w", m.Label, ErrDisabled)
	}
	return it.s.bus.Object(it.Service, it.Menu).CallWithContext(ctx, MenuInterface+".Event", 0,
		m.ID, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix())).Err
}

// WaitMenu polls the menu until cond holds and returns it; on timeout the
// error shows the last menu seen.
func (it *Item) WaitMenu(ctx context.Context, what string, cond func([]MenuItem) bool) ([]MenuItem, error) {
	var last []MenuItem
	var lastErr error
	for {
		items, err := it.Layout(ctx)
		if err == nil && cond(items) {
			return items, nil
		}
		if err == nil {
			last = items
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("desktop: menu never showed %s (last menu: %s; last error: %v)", what, Labels(last), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Icon returns the item's icon (the largest of its IconPixmap images).
func (it *Item) Icon(ctx context.Context) (image.Image, error) {
	v, err := it.s.bus.Object(it.Service, it.Path).GetProperty(ItemInterface + ".IconPixmap")
	if err != nil {
		return nil, fmt.Errorf("desktop: IconPixmap: %w", err)
	}
	var pixmaps []struct {
		W, H int32
		Data []byte
	}
	if err := dbus.Store([]interface{}{v.Value()}, &pixmaps); err != nil {
		return nil, fmt.Errorf("desktop: IconPixmap: %w", err)
	}
	best := -1
	for i, p := range pixmaps {
		if int(p.W*p.H*4) == len(p.Data) && (best < 0 || p.W > pixmaps[best].W) {
			best = i
		}
	}
	if best < 0 {
		return nil, errors.New("desktop: the item has no usable IconPixmap")
	}
	p := pixmaps[best]
	// ARGB32 in network byte order, as the StatusNotifierItem spec says.
	img := image.NewNRGBA(image.Rect(0, 0, int(p.W), int(p.H)))
	for i := 0; i < int(p.W*p.H); i++ {
		a, r, g, b := p.Data[4*i], p.Data[4*i+1], p.Data[4*i+2], p.Data[4*i+3]
		c := color.NRGBA{A: a}
		if a > 0 { // un-premultiply
			c.R, c.G, c.B = uint8(int(r)*255/int(a)), uint8(int(g)*255/int(a)), uint8(int(b)*255/int(a))
		}
		img.SetNRGBA(i%int(p.W), i/int(p.W), c)
	}
	return img, nil
}

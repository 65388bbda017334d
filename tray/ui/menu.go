// Package ui is the fyne layer of the tray: icons, the tray menu, the status
// and doctor windows. It does not import fyne's app package, so it builds
// without cgo and its tests run on fyne's test driver.
package ui

import (
	"fyne.io/fyne/v2"

	"github.com/clearpath-vpn/clearpath/tray"
)

// BuildMenu turns the menu model into a fyne menu; a click calls onClick
// with the item's ID.
func BuildMenu(items []tray.Item, onClick func(id string)) *fyne.Menu {
	return fyne.NewMenu("ClearPath", menuItems(items, onClick)...)
}

func menuItems(items []tray.Item, onClick func(id string)) []*fyne.MenuItem {
	out := make([]*fyne.MenuItem, 0, len(items))
	for _, it := range items {
		if it.Separator {
			out = append(out, fyne.NewMenuItemSeparator())
			continue
		}
		id := it.ID
		mi := fyne.NewMenuItem(it.Label, func() { onClick(id) })
		mi.Disabled, mi.Checked = it.Disabled, it.Checked
		mi.IsQuit = id == tray.ItemQuit
		if len(it.Children) > 0 {
			mi.ChildMenu = fyne.NewMenu("", menuItems(it.Children, onClick)...)
			mi.Action = nil
		}
		out = append(out, mi)
	}
	return out
}

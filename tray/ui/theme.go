package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
)

// Theme is fyne's default theme with tighter spacing: the status window
// shows a dozen fields, routes and the overlap plan without scrolling, as
// a desktop utility window does.
func Theme() fyne.Theme { return compact{theme.DefaultTheme()} }

type compact struct{ fyne.Theme }

func (c compact) Size(n fyne.ThemeSizeName) float32 {
	switch n {
	case theme.SizeNamePadding:
		return 3
	case theme.SizeNameInnerPadding:
		return 5
	}
	return c.Theme.Size(n)
}

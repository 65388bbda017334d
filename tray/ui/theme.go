package ui

import (
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
)

// Primary is the colour of the windows' main buttons (doctor's Fix):
// fyne's default blue, pinned so that it does not follow a desktop-wide
// fyne setting and tests can find those buttons on screen.
var Primary color.Color = color.NRGBA{R: 0x29, G: 0x6f, B: 0xf6, A: 0xff}

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

func (c compact) Color(n fyne.ThemeColorName, v fyne.ThemeVariant) color.Color {
	if n == theme.ColorNamePrimary {
		return Primary
	}
	return c.Theme.Color(n, v)
}

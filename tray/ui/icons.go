package ui

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"

	"fyne.io/fyne/v2"

	"github.com/clearpath-vpn/clearpath/tray"
)

// The icons are drawn here rather than shipped as files: five states, each
// a coloured disc with a white glyph, so the state reads without colour too
// (check, bar, dots, padlock, exclamation mark). StatusNotifier hosts want
// PNG data.
var icons = map[tray.State]fyne.Resource{}

// Icon returns the tray icon of state s.
func Icon(s tray.State) fyne.Resource {
	if r, ok := icons[s]; ok {
		return r
	}
	return icons[tray.Disconnected]
}

// AppIcon is the application's icon (the connected look).
func AppIcon() fyne.Resource { return Icon(tray.Connected) }

func init() {
	for s, spec := range iconSpecs {
		var b bytes.Buffer
		if err := png.Encode(&b, drawIcon(64, spec)); err != nil {
			panic(err) // encoding an in-memory RGBA cannot fail
		}
		icons[s] = fyne.NewStaticResource("clearpath-"+slug(s)+".png", b.Bytes())
	}
}

func slug(s tray.State) string {
	switch s {
	case tray.NeedsLogin:
		return "needs-login"
	}
	return s.String()
}

type iconSpec struct {
	bg    color.NRGBA
	glyph func(x, y float64) float64 // coverage 0..1 of the glyph at (x, y) in [-1, 1]²
}

var (
	white = color.NRGBA{255, 255, 255, 255}

	iconSpecs = map[tray.State]iconSpec{
		tray.Connected:    {color.NRGBA{0x2e, 0x9e, 0x44, 255}, check},
		tray.Disconnected: {color.NRGBA{0x7a, 0x7f, 0x87, 255}, bar},
		tray.Connecting:   {color.NRGBA{0xe0, 0x9a, 0x1a, 255}, dots},
		tray.NeedsLogin:   {color.NRGBA{0x2f, 0x6f, 0xd6, 255}, padlock},
		tray.Error:        {color.NRGBA{0xd3, 0x2f, 0x2f, 255}, bang},
	}
)

// drawIcon renders a disc of spec.bg with the glyph in white, with a pixel
// of anti-aliasing from 4x4 supersampling.
func drawIcon(size int, spec iconSpec) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	const ss = 4
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var disc, glyph float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px)+(float64(sx)+0.5)/ss)/float64(size)*2 - 1
					y := (float64(py)+(float64(sy)+0.5)/ss)/float64(size)*2 - 1
					if x*x+y*y <= 0.94*0.94 {
						disc++
						glyph += spec.glyph(x, y)
					}
				}
			}
			n := float64(ss * ss)
			if disc == 0 {
				continue
			}
			g := glyph / disc
			c := mix(spec.bg, white, g)
			c.A = uint8(math.Round(255 * disc / n))
			img.SetNRGBA(px, py, c)
		}
	}
	return img
}

func mix(a, b color.NRGBA, t float64) color.NRGBA {
	l := func(x, y uint8) uint8 { return uint8(math.Round(float64(x)*(1-t) + float64(y)*t)) }
	return color.NRGBA{l(a.R, b.R), l(a.G, b.G), l(a.B, b.B), 255}
}

// segment is 1 within w of the segment (ax,ay)-(bx,by).
func segment(x, y, ax, ay, bx, by, w float64) float64 {
	dx, dy := bx-ax, by-ay
	t := ((x-ax)*dx + (y-ay)*dy) / (dx*dx + dy*dy)
	t = math.Max(0, math.Min(1, t))
	ex, ey := x-(ax+t*dx), y-(ay+t*dy)
	if ex*ex+ey*ey <= w*w {
		return 1
	}
	return 0
}

func circle(x, y, cx, cy, r float64) float64 {
	if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r {
		return 1
	}
	return 0
}

func check(x, y float64) float64 {
	return math.Max(segment(x, y, -0.45, 0.02, -0.12, 0.36, 0.12), segment(x, y, -0.12, 0.36, 0.48, -0.32, 0.12))
}

func bar(x, y float64) float64 { return segment(x, y, -0.45, 0, 0.45, 0, 0.12) }

func dots(x, y float64) float64 {
	return math.Max(circle(x, y, -0.42, 0, 0.14), math.Max(circle(x, y, 0, 0, 0.14), circle(x, y, 0.42, 0, 0.14)))
}

func padlock(x, y float64) float64 {
	body := 0.0
	if x >= -0.38 && x <= 0.38 && y >= -0.05 && y <= 0.5 {
		body = 1
	}
	// The shackle: the upper half of a ring.
	r := math.Hypot(x, y+0.08)
	shackle := 0.0
	if y <= -0.05 && r >= 0.18 && r <= 0.3 {
		shackle = 1
	}
	keyhole := circle(x, y, 0, 0.18, 0.08)
	return math.Max(body, shackle) * (1 - keyhole)
}

func bang(x, y float64) float64 {
	return math.Max(segment(x, y, 0, -0.5, 0, 0.12, 0.12), circle(x, y, 0, 0.42, 0.12))
}

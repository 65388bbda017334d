//go:build linux

package desktop

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// x runs an X client of the session and returns its stdout.
func (s *Session) x(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), s.Env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("desktop: %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Screenshot captures the whole screen.
func (s *Session) Screenshot(ctx context.Context) (image.Image, error) {
	return s.capture(ctx, "root")
}

// WindowScreenshot captures the visible window whose title is title.
func (s *Session) WindowScreenshot(ctx context.Context, title string) (image.Image, error) {
	id, err := s.Window(ctx, title)
	if err != nil {
		return nil, err
	}
	return s.capture(ctx, id)
}

// Window returns the id of the visible window titled title.
func (s *Session) Window(ctx context.Context, title string) (string, error) {
	out, err := s.x(ctx, "xdotool", "search", "--onlyvisible", "--name", "^"+regexp.QuoteMeta(title)+"$")
	if err != nil {
		return "", fmt.Errorf("desktop: no visible window %q: %w", title, err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return "", fmt.Errorf("desktop: no visible window %q", title)
	}
	return ids[len(ids)-1], nil
}

func (s *Session) capture(ctx context.Context, window string) (image.Image, error) {
	out, err := s.x(ctx, "import", "-window", window, "png:-")
	if err != nil {
		return nil, err
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("desktop: screenshot: %w", err)
	}
	return img, nil
}

// Click moves the pointer to (x, y) and clicks button (1 left, 3 right).
func (s *Session) Click(ctx context.Context, x, y, button int) error {
	_, err := s.x(ctx, "xdotool", "mousemove", strconv.Itoa(x), strconv.Itoa(y), "click", strconv.Itoa(button))
	return err
}

// ClickWindow clicks at (x, y) relative to the visible window titled title.
func (s *Session) ClickWindow(ctx context.Context, title string, x, y, button int) error {
	id, err := s.Window(ctx, title)
	if err != nil {
		return err
	}
	_, err = s.x(ctx, "xdotool", "mousemove", "--window", id, strconv.Itoa(x), strconv.Itoa(y), "click", strconv.Itoa(button))
	return err
}

// Key sends a key press ("Escape", "ctrl+c").
func (s *Session) Key(ctx context.Context, key string) error {
	_, err := s.x(ctx, "xdotool", "key", key)
	return err
}

// TrayIcons returns where the tray bar (along the bottom) shows
// something other than its background: the icons.
func TrayIcons(screen image.Image) image.Rectangle {
	bg := parseHex(BarColor)
	b := screen.Bounds()
	bar := image.Rect(b.Min.X, b.Max.Y-BarHeight, b.Max.X, b.Max.Y)
	return Changed(bar, func(x, y int) bool { return far(screen.At(x, y), bg, 24) })
}

// FindColor returns the bounds of the pixels of img within tol of c (per
// 8-bit channel): where a widget of that colour is drawn.
func FindColor(img image.Image, c color.Color, tol int) image.Rectangle {
	return Changed(img.Bounds(), func(x, y int) bool { return !far(img.At(x, y), c, tol) })
}

// Diff returns the bounds of the pixels that differ between a and b.
func Diff(a, b image.Image) image.Rectangle {
	return Changed(a.Bounds().Intersect(b.Bounds()), func(x, y int) bool { return far(a.At(x, y), b.At(x, y), 8) })
}

// Changed returns the bounding box of the points of r where hit holds.
func Changed(r image.Rectangle, hit func(x, y int) bool) image.Rectangle {
	var out image.Rectangle
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if hit(x, y) {
				out = out.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return out
}

func far(a, b color.Color, tol int) bool {
	ar, ag, ab, _ := a.RGBA()
	br, bg, bb, _ := b.RGBA()
	d := func(x, y uint32) int {
		v := int(x>>8) - int(y>>8)
		if v < 0 {
			return -v
		}
		return v
	}
	return d(ar, br) > tol || d(ag, bg) > tol || d(ab, bb) > tol
}

func parseHex(s string) color.Color {
	v, _ := strconv.ParseUint(strings.TrimPrefix(s, "#"), 16, 32)
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}
}

// Crop returns the part r of img (grown by margin, kept on the image).
func Crop(img image.Image, r image.Rectangle, margin int) image.Image {
	r = r.Inset(-margin).Intersect(img.Bounds())
	out := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(out, out.Bounds(), img, r.Min, draw.Src)
	return out
}

// SavePNG writes img to path, creating its directory.
func SavePNG(path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/widget"

	"github.com/clearpath-vpn/clearpath/tray"
)

// StatusPanel shows a view: state, user, addresses, server and endpoint,
// handshake age, rates, routes, overlap plan and expiries. Update it with
// every new view for a live window.
type StatusPanel struct {
	icon     *canvas.Image
	title    *widget.Label
	fields   *fyne.Container
	routes   *widget.Label
	overlaps *widget.Label
	content  fyne.CanvasObject
}

// NewStatusPanel returns an empty panel.
func NewStatusPanel() *StatusPanel {
	p := &StatusPanel{
		icon:     canvas.NewImageFromResource(Icon(tray.Disconnected)),
		title:    widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		fields:   container.New(layout.NewFormLayout()),
		routes:   widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true}),
		overlaps: widget.NewLabel(""),
	}
	p.icon.FillMode = canvas.ImageFillContain
	p.icon.SetMinSize(fyne.NewSize(32, 32))
	p.routes.Selectable = true
	p.overlaps.Wrapping = fyne.TextWrapWord
	head := container.NewHBox(p.icon, p.title)
	body := container.NewVBox(
		p.fields,
		widget.NewSeparator(),
		widget.NewLabelWithStyle("Overlap plan", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		p.overlaps,
		widget.NewLabelWithStyle("Routes installed", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		p.routes,
	)
	p.content = container.NewBorder(head, nil, nil, nil, container.NewVScroll(body))
	return p
}

// Content is the panel's widget tree.
func (p *StatusPanel) Content() fyne.CanvasObject { return p.content }

// Update shows v. Call it on fyne's goroutine.
func (p *StatusPanel) Update(v tray.View) {
	p.icon.Resource = Icon(v.State)
	p.icon.Refresh()
	p.title.SetText("ClearPath: " + tray.StateLine(v))
	rows := tray.StatusRows(v)
	objs := make([]fyne.CanvasObject, 0, 2*len(rows))
	for _, r := range rows {
		val := widget.NewLabel(r.Value)
		val.Wrapping = fyne.TextWrapWord
		val.Selectable = true
		objs = append(objs, widget.NewLabelWithStyle(r.Label, fyne.TextAlignTrailing, fyne.TextStyle{Bold: true}), val)
	}
	p.fields.Objects = objs
	p.fields.Refresh()
	p.routes.SetText(lines(tray.RouteLines(v), "none"))
	p.overlaps.SetText(lines(tray.OverlapLines(v), "no pushed prefix overlaps a route of this machine"))
}

// Field returns the value shown for label, for tests and screen readers.
func (p *StatusPanel) Field(label string) (string, bool) {
	for i := 0; i+1 < len(p.fields.Objects); i += 2 {
		if l, ok := p.fields.Objects[i].(*widget.Label); ok && l.Text == label {
			return p.fields.Objects[i+1].(*widget.Label).Text, true
		}
	}
	return "", false
}

// Routes is the text of the routes box.
func (p *StatusPanel) Routes() string { return p.routes.Text }

// Overlaps is the text of the overlap box.
func (p *StatusPanel) Overlaps() string { return p.overlaps.Text }

// Title is the heading line.
func (p *StatusPanel) Title() string { return p.title.Text }

func lines(ls []string, none string) string {
	if len(ls) == 0 {
		return none
	}
	s := ls[0]
	for _, l := range ls[1:] {
		s += "\n" + l
	}
	return s
}

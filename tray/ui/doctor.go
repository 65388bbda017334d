package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// DoctorPanel runs doctor and shows its findings: severity, evidence,
// explanation, a Fix button per fixable finding, and "Copy report" (the
// JSON report, as `vpn doctor --json` prints it).
type DoctorPanel struct {
	check func(context.Context) (analysis.Report, error)
	fix   func(context.Context, string) (analysis.Report, error)
	clip  fyne.Clipboard

	summary  *widget.Label
	rerun    *widget.Button
	copyBtn  *widget.Button
	findings *fyne.Container
	content  fyne.CanvasObject

	work sync.WaitGroup

	mu      sync.Mutex
	report  *analysis.Report
	fixBtns map[string]*widget.Button
	running bool
}

// NewDoctorPanel returns a panel driving check and fix; "Copy report"
// writes to clip.
func NewDoctorPanel(check func(context.Context) (analysis.Report, error), fix func(context.Context, string) (analysis.Report, error), clip fyne.Clipboard) *DoctorPanel {
	p := &DoctorPanel{check: check, fix: fix, clip: clip, fixBtns: map[string]*widget.Button{}}
	p.summary = widget.NewLabel("Not run yet")
	p.summary.Wrapping = fyne.TextWrapWord
	p.rerun = widget.NewButton("Run again", p.Run)
	p.copyBtn = widget.NewButton("Copy report", p.Copy)
	p.copyBtn.Disable()
	p.findings = container.NewVBox()
	top := container.NewBorder(nil, nil, nil, container.NewHBox(p.rerun, p.copyBtn), p.summary)
	p.content = container.NewBorder(top, nil, nil, nil, container.NewVScroll(p.findings))
	return p
}

// Content is the panel's widget tree.
func (p *DoctorPanel) Content() fyne.CanvasObject { return p.content }

// Run runs doctor in the background and shows the result.
func (p *DoctorPanel) Run() {
	p.start("Running doctor…", func(ctx context.Context) (analysis.Report, error) { return p.check(ctx) })
}

// Fix repairs finding id in the background and shows the new report.
func (p *DoctorPanel) Fix(id string) {
	p.start("Fixing "+id+"…", func(ctx context.Context) (analysis.Report, error) { return p.fix(ctx, id) })
}

func (p *DoctorPanel) start(what string, work func(context.Context) (analysis.Report, error)) {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return
	}
	p.running = true
	p.mu.Unlock()
	p.summary.SetText(what)
	p.rerun.Disable()
	for _, b := range p.fixBtns {
		b.Disable()
	}
	p.work.Add(1)
	go func() {
		defer p.work.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rep, err := work(ctx)
		fyne.Do(func() {
			p.mu.Lock()
			p.running = false
			p.mu.Unlock()
			p.rerun.Enable()
			if err != nil {
				p.summary.SetText("Doctor failed: " + err.Error())
				for _, b := range p.fixBtns {
					b.Enable()
				}
				return
			}
			p.Show(rep)
		})
	}()
}

// Show displays rep. Call it on fyne's goroutine.
func (p *DoctorPanel) Show(rep analysis.Report) {
	p.mu.Lock()
	p.report = &rep
	p.fixBtns = map[string]*widget.Button{}
	p.mu.Unlock()
	p.summary.SetText(Summary(rep))
	p.copyBtn.Enable()
	objs := make([]fyne.CanvasObject, 0, len(rep.Findings))
	for _, f := range rep.Findings {
		objs = append(objs, p.card(f))
	}
	p.findings.Objects = objs
	p.findings.Refresh()
}

func (p *DoctorPanel) card(f analysis.Finding) fyne.CanvasObject {
	var parts []fyne.CanvasObject
	if f.Owner != "" && f.Owner != "unknown" {
		parts = append(parts, widget.NewLabel("Owner: "+f.Owner))
	}
	if len(f.Evidence) > 0 {
		ev := make([]string, len(f.Evidence))
		for i, e := range f.Evidence {
			ev[i] = e.Text
		}
		l := widget.NewLabelWithStyle(strings.Join(ev, "\n"), fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		l.Selectable = true
		parts = append(parts, widget.NewLabelWithStyle("Evidence", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), l)
	}
	why := widget.NewLabel(f.Explanation)
	why.Wrapping = fyne.TextWrapWord
	parts = append(parts, widget.NewLabelWithStyle("Why", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), why)
	if len(f.Commands) > 0 {
		l := widget.NewLabelWithStyle(strings.Join(f.Commands, "\n"), fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		l.Selectable = true
		parts = append(parts, widget.NewLabelWithStyle("Fix", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), l)
	}
	if f.Fixable {
		id := f.ID
		b := widget.NewButton("Fix "+id, func() { p.Fix(id) })
		b.Importance = widget.HighImportance
		p.mu.Lock()
		p.fixBtns[id] = b
		p.mu.Unlock()
		parts = append(parts, b)
	}
	return widget.NewCard(SeverityMark(f.Severity)+" "+f.Title, f.Severity+" · "+f.ID, container.NewVBox(parts...))
}

// Copy puts the last report, as JSON, on the clipboard.
func (p *DoctorPanel) Copy() {
	p.mu.Lock()
	rep := p.report
	p.mu.Unlock()
	if rep == nil {
		return
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		p.summary.SetText("Copy report: " + err.Error())
		return
	}
	p.clip.SetContent(string(b) + "\n")
}

// Wait returns once a running check or fix has been shown.
func (p *DoctorPanel) Wait() { p.work.Wait() }

// Summary is the one-line verdict of rep.
func Summary(rep analysis.Report) string {
	var errs, warns, notes int
	for _, f := range rep.Findings {
		switch f.Severity {
		case analysis.Error:
			errs++
		case analysis.Warning:
			warns++
		default:
			notes++
		}
	}
	switch {
	case errs+warns > 0:
		return count(errs, "error") + ", " + count(warns, "warning") + ", " + count(notes, "note")
	case notes > 0:
		return "✓ Routing looks healthy (" + count(notes, "note") + ")"
	}
	return "✓ Routing looks healthy: no problems found"
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// SeverityMark is the symbol doctor prints before a finding.
func SeverityMark(sev string) string {
	switch sev {
	case analysis.Error:
		return "✗"
	case analysis.Warning:
		return "!"
	}
	return "i"
}

// SummaryText is the summary line shown (for tests).
func (p *DoctorPanel) SummaryText() string { return p.summary.Text }

// FixButton returns the Fix button of finding id, nil when it has none.
func (p *DoctorPanel) FixButton(id string) *widget.Button {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fixBtns[id]
}

// CopyButton is the "Copy report" button.
func (p *DoctorPanel) CopyButton() *widget.Button { return p.copyBtn }

// Findings is the number of finding cards shown.
func (p *DoctorPanel) Findings() int { return len(p.findings.Objects) }

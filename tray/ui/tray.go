package ui

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"

	"fyne.io/fyne/v2"

	"github.com/clearpath-vpn/clearpath/tray"
)

// Host shows the tray menu and icon: fyne's desktop.App on a desktop.
type Host interface {
	SetSystemTrayMenu(menu *fyne.Menu)
	SetSystemTrayIcon(icon fyne.Resource)
}

// Tray binds a controller to fyne: it redraws the menu and icon when the
// state changes, keeps the status window live and turns clicks into the
// controller's actions.
type Tray struct {
	ctx  context.Context
	app  fyne.App
	host Host
	ctl  *tray.Controller
	quit func()
	log  *slog.Logger

	actions sync.WaitGroup

	items     []tray.Item
	state     tray.State
	drawn     bool
	menu      *fyne.Menu
	status    *StatusPanel
	statusWin fyne.Window
	doctor    *DoctorPanel
	doctorWin fyne.Window
}

// NewTray returns the tray of ctl; quit runs after the Quit item (before
// the app quits).
func NewTray(ctx context.Context, a fyne.App, host Host, ctl *tray.Controller, quit func(), log *slog.Logger) *Tray {
	if log == nil {
		log = slog.Default()
	}
	return &Tray{ctx: ctx, app: a, host: host, ctl: ctl, quit: quit, log: log}
}

// Start draws the current view and follows the controller from now on.
func (t *Tray) Start() {
	t.ctl.Subscribe(func(v tray.View) { fyne.Do(func() { t.Render(v) }) })
	t.Render(t.ctl.View())
}

// Render shows v: the menu and icon only when they change (a StatusNotifier
// host rebuilds an open menu on every update), the status window always.
func (t *Tray) Render(v tray.View) {
	items := tray.Menu(v)
	if !t.drawn || !reflect.DeepEqual(items, t.items) {
		t.items = items
		t.menu = BuildMenu(items, t.Click)
		t.host.SetSystemTrayMenu(t.menu)
	}
	if !t.drawn || v.State != t.state {
		t.state = v.State
		t.host.SetSystemTrayIcon(Icon(v.State))
	}
	t.drawn = true
	if t.status != nil {
		t.status.Update(v)
	}
}

// Menu is the fyne menu last handed to the host.
func (t *Tray) Menu() *fyne.Menu { return t.menu }

// Click runs the action of menu item id. Long actions run in the
// background: the tray stays responsive and shows their progress.
func (t *Tray) Click(id string) {
	switch {
	case id == tray.ItemConnect:
		t.background("Connect", t.ctl.Connect)
	case id == tray.ItemDisconnect:
		t.background("Disconnect", t.ctl.Disconnect)
	case id == tray.ItemLogin:
		t.background("Log in", t.ctl.Login)
	case id == tray.ItemLogout:
		t.background("Log out", t.ctl.Logout)
	case strings.HasPrefix(id, tray.NetworkPrefix):
		name := strings.TrimPrefix(id, tray.NetworkPrefix)
		t.background("Switch network", func(ctx context.Context) error { return t.ctl.SelectNetwork(ctx, name) })
	case id == tray.ItemAllTraffic || id == tray.ItemRouteLAN:
		t.background("Change option", func(ctx context.Context) error { return t.ctl.ToggleOption(ctx, id) })
	case id == tray.ItemRestore:
		t.background("Restore routes", t.ctl.Restore)
	case id == tray.ItemStatus:
		t.OpenStatus()
	case id == tray.ItemDoctor:
		t.OpenDoctor()
	case id == tray.ItemQuit:
		if t.quit != nil {
			t.quit()
		}
		t.app.Quit()
	}
}

func (t *Tray) background(what string, act func(context.Context) error) {
	t.actions.Add(1)
	go func() {
		defer t.actions.Done()
		err := act(t.ctx)
		if err == nil || errors.Is(err, tray.ErrBusy) || t.ctx.Err() != nil {
			return
		}
		t.log.Warn("tray action failed", "action", what, "err", err)
		t.app.SendNotification(fyne.NewNotification("ClearPath: "+what+" failed", tray.EscapeMarkup(err.Error())))
	}()
}

// Wait returns once the actions started by clicks have finished.
func (t *Tray) Wait() { t.actions.Wait() }

// OpenStatus shows the live status window.
func (t *Tray) OpenStatus() {
	if t.statusWin == nil {
		t.status = NewStatusPanel()
		t.statusWin = t.app.NewWindow("ClearPath status")
		t.statusWin.SetContent(t.status.Content())
		t.statusWin.Resize(fyne.NewSize(620, 720))
		t.statusWin.SetCloseIntercept(t.statusWin.Hide) // a tray app lives on without windows
	}
	t.status.Update(t.ctl.View())
	t.statusWin.Show()
	t.statusWin.RequestFocus()
}

// OpenDoctor shows the doctor window and runs doctor.
func (t *Tray) OpenDoctor() {
	if t.doctorWin == nil {
		t.doctor = NewDoctorPanel(t.ctl.Doctor, t.ctl.Fix, t.app.Clipboard())
		t.doctorWin = t.app.NewWindow("ClearPath doctor")
		t.doctorWin.SetContent(t.doctor.Content())
		t.doctorWin.Resize(fyne.NewSize(720, 560))
		t.doctorWin.SetCloseIntercept(t.doctorWin.Hide)
	}
	t.doctorWin.Show()
	t.doctor.Run()
}

// StatusPanel is the status window's panel, nil until opened.
func (t *Tray) StatusPanel() *StatusPanel { return t.status }

// DoctorPanel is the doctor window's panel, nil until opened.
func (t *Tray) DoctorPanel() *DoctorPanel { return t.doctor }

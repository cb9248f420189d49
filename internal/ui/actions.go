package ui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

const (
	// csrfField is the forms' hidden field that repeats the cookie.
	csrfField = "csrf"
	// maxForm bounds an action's body.
	maxForm = 16 << 10
	// maxReason bounds a reason (as the manual-run API does).
	maxReason = 1024
)

// csrfCookie names the token cookie; over TLS with the __Host- prefix,
// which a browser only accepts from this host, over HTTPS, for path /.
func csrfCookie(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-node-healer-csrf"
	}
	return "node-healer-csrf"
}

// csrfToken returns the browser's token, setting a new one when it has
// none. Double submit: the token lives in a cookie no script can read
// (HttpOnly) and no other site can send (SameSite=Strict); a form is
// accepted only when it repeats it, which a page of another origin
// cannot, not being able to read it. Nothing is kept on the server, so
// any replica accepts a form another one rendered.
func (u *UI) csrfToken(c echo.Context) string {
	r := c.Request()
	if ck, err := r.Cookie(csrfCookie(r)); err == nil && validToken(ck.Value) {
		return ck.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	c.SetCookie(&http.Cookie{Name: csrfCookie(r), Value: tok, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
	// Now the page's forms carry it; later pages read it from the cookie.
	r.AddCookie(&http.Cookie{Name: csrfCookie(r), Value: tok})
	return tok
}

func validToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// checkCSRF refuses a form that does not come from this site's page.
func (u *UI) checkCSRF(r *http.Request) error {
	if err := u.cop.Check(r); err != nil {
		return &Error{Code: http.StatusForbidden, Msg: "refused: a cross-origin request (" + err.Error() + ")"}
	}
	ck, err := r.Cookie(csrfCookie(r))
	form := r.PostFormValue(csrfField)
	if err != nil || form == "" || !validToken(ck.Value) ||
		subtle.ConstantTimeCompare([]byte(ck.Value), []byte(form)) != 1 {
		return &Error{Code: http.StatusForbidden, Msg: "refused: missing or invalid CSRF token. Reload the page and submit the form again."}
	}
	return nil
}

// actionFunc does one action for user and returns where to go next and
// what to say there (a key of flashes).
type actionFunc func(c echo.Context, user string) (to, flash string, err error)

// flashes are what a page says after an action (?done=KEY): fixed
// texts, so a link cannot put words of its own on the page.
var flashes = map[string]string{
	"paused":    "Paused: no run starts; running runs hold before their next destructive step.",
	"resumed":   "Resumed.",
	"started":   "Run queued: it goes through every safety check before it acts.",
	"duplicate": "An identical run already exists: here it is.",
	"cleared":   "Escalation cleared: the needs-attention marks are gone; the cordon stays until you uncordon.",
}

// action is an action's common path: a same-origin form with a valid
// CSRF token, from an authenticated user; then the action, its audit
// line, and a redirect (303) to the page to look at.
func (u *UI) action(do actionFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		r.Body = http.MaxBytesReader(c.Response(), r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			return u.refuse(c, "", &Error{Code: http.StatusBadRequest, Msg: "cannot read the form: " + err.Error()})
		}
		if err := u.checkCSRF(r); err != nil {
			return u.refuse(c, "", err)
		}
		user, err := u.o.Identity(r)
		if err != nil || user == "" {
			msg := "refused: actions need an authenticated user"
			if err != nil {
				msg += " (" + err.Error() + ")"
			}
			return u.refuse(c, "", &Error{Code: http.StatusForbidden, Msg: msg})
		}
		if ok, why := u.o.MayAct(user); !ok {
			return u.refuse(c, user, &Error{Code: http.StatusForbidden, Msg: "refused: " + why})
		}
		to, flash, err := do(c, user)
		if err != nil {
			return u.refuse(c, user, err)
		}
		if flash != "" {
			to += "?done=" + url.QueryEscape(flash)
		}
		return c.Redirect(http.StatusSeeOther, to)
	}
}

// refuse logs a refused or failed action and renders why.
func (u *UI) refuse(c echo.Context, user string, err error) error {
	e := &Error{}
	if !errors.As(err, &e) {
		e = &Error{Code: http.StatusServiceUnavailable, Msg: err.Error()}
	}
	lvl := slog.LevelInfo
	if e.Code >= 500 {
		lvl = slog.LevelError
	}
	u.o.Log.Log(c.Request().Context(), lvl, "ui action refused", "path", c.Path(), "user", user, "code", e.Code, "err", e.Msg,
		"remote", c.Request().RemoteAddr)
	back := c.Request().Referer()
	if ref, err := url.Parse(back); err != nil || ref.Host != c.Request().Host {
		back = "/"
	}
	return u.fail(c, e.Code, e.Msg, back)
}

// audit logs a mutation as every mutation is logged (audit=true).
func (u *UI) audit(ctx context.Context, action, user string, attrs ...slog.Attr) {
	u.o.Log.LogAttrs(ctx, slog.LevelInfo, "audit", append([]slog.Attr{slog.Bool("audit", true), slog.String("action", action),
		slog.String("by", user), slog.String("source", "ui")}, attrs...)...)
}

// reason is a required free-text reason from the form.
func reason(c echo.Context, what string) (string, error) {
	s := strings.TrimSpace(c.Request().PostFormValue("reason"))
	switch {
	case s == "":
		return "", &Error{Code: http.StatusUnprocessableEntity, Msg: "reason: required — say why you " + what + " (it is logged and shown to others)"}
	case len(s) > maxReason:
		return "", &Error{Code: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("reason: longer than %d bytes", maxReason)}
	case !utf8.ValidString(s):
		return "", &Error{Code: http.StatusUnprocessableEntity, Msg: "reason: not valid UTF-8"}
	}
	return s, nil
}

func (u *UI) actions() (Actions, error) {
	if u.o.Actions == nil {
		return nil, &Error{Code: http.StatusNotImplemented, Msg: "actions are not available on this receiver"}
	}
	return u.o.Actions, nil
}

func (u *UI) pause(c echo.Context, user string) (string, string, error) {
	a, err := u.actions()
	if err != nil {
		return "", "", err
	}
	why, err := reason(c, "pause")
	if err != nil {
		return "", "", err
	}
	ctx := c.Request().Context()
	if err := a.Pause(ctx, user, why); err != nil {
		return "", "", fmt.Errorf("pause failed (Redis): %w", err)
	}
	u.audit(ctx, "pause", user, slog.String("reason", why))
	return "/", "paused", nil
}

func (u *UI) resume(c echo.Context, user string) (string, string, error) {
	a, err := u.actions()
	if err != nil {
		return "", "", err
	}
	ctx := c.Request().Context()
	if err := a.Resume(ctx, user); err != nil {
		return "", "", fmt.Errorf("resume failed (Redis): %w", err)
	}
	u.audit(ctx, "resume", user)
	return "/", "resumed", nil
}

func (u *UI) heal(c echo.Context, user string) (string, string, error) {
	if u.o.Heal == nil {
		return "", "", &Error{Code: http.StatusNotImplemented, Msg: "manual heals are not available on this receiver"}
	}
	f := c.Request().PostForm
	req := HealRequest{Node: strings.TrimSpace(f.Get("node")), Runbook: strings.TrimSpace(f.Get("runbook")), By: user,
		DryRun: f.Get("dry_run") != ""}
	why, err := reason(c, "start this run")
	if err != nil {
		return "", "", err
	}
	req.Reason = why
	rep, err := u.o.Heal(c.Request().Context(), req)
	if err != nil {
		return "", "", err
	}
	// The manual-run path logs the request itself (requested_by, reason).
	u.audit(c.Request().Context(), "heal", user, slog.String("node", req.Node), slog.String("runbook", req.Runbook),
		slog.String("run", rep.Run), slog.Bool("dry_run", req.DryRun), slog.Bool("duplicate", rep.Duplicate), slog.String("reason", why))
	flash := "started"
	if rep.Duplicate {
		flash = "duplicate"
	}
	return "/runs/" + url.PathEscape(rep.Run), flash, nil
}

func (u *UI) clearEscalation(c echo.Context, user string) (string, string, error) {
	a, err := u.actions()
	if err != nil {
		return "", "", err
	}
	node := strings.TrimSpace(c.Request().PostFormValue("node"))
	if node == "" {
		return "", "", &Error{Code: http.StatusUnprocessableEntity, Msg: "node: required"}
	}
	why, err := reason(c, "clear the escalation (what was fixed)")
	if err != nil {
		return "", "", err
	}
	ctx := c.Request().Context()
	if err := a.ClearEscalation(ctx, node, user, why); err != nil {
		if errors.Is(err, ErrNodeNotFound) {
			return "", "", &Error{Code: http.StatusNotFound, Msg: "no node " + node + " in the cluster"}
		}
		return "", "", err
	}
	u.audit(ctx, "clear-escalation", user, slog.String("node", node), slog.String("reason", why))
	return "/nodes/" + url.PathEscape(node), "cleared", nil
}

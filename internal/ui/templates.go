package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// pages are the templates that render a whole page; each is parsed with
// layout.html and parts.html.
var pages = []string{"overview", "runs", "run", "node", "error"}

type templates struct {
	page map[string]*template.Template
}

func parseTemplates(amURL string) (*templates, error) {
	base, err := template.New("layout.html").Funcs(funcs(amURL)).ParseFS(files, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("ui templates: %w", err)
	}
	t := &templates{page: map[string]*template.Template{}}
	for _, p := range pages {
		c, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if t.page[p], err = c.ParseFS(files, "templates/"+p+".html"); err != nil {
			return nil, fmt.Errorf("ui template %s: %w", p, err)
		}
	}
	return t, nil
}

// render writes a page: rendered whole first, so a template error is a
// 500 and never half a page.
func (u *UI) render(c echo.Context, code int, page string, data any) error {
	var b bytes.Buffer
	if err := u.tmpl.page[page].ExecuteTemplate(&b, "layout.html", data); err != nil {
		u.o.Log.Error("ui: rendering a page failed", "page", page, "err", err)
		return c.String(http.StatusInternalServerError, "internal error rendering the page\n")
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	return c.HTMLBlob(code, b.Bytes())
}

func funcs(amURL string) template.FuncMap {
	amURL = strings.TrimSuffix(amURL, "/")
	return template.FuncMap{
		"ts":    timestamp,
		"clock": clock,
		"since": func(now, t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return human(now.Sub(t))
		},
		"between": func(a, b time.Time) string {
			if a.IsZero() || b.IsZero() {
				return "—"
			}
			return human(b.Sub(a))
		},
		"dur":   human,
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"class": statusClass,
		"alertURL": func(labels map[string]string) string {
			if amURL == "" || len(labels) == 0 {
				return ""
			}
			return amURL + "/#/alerts?silenced=true&inhibited=true&filter=" + url.QueryEscape(matchers(labels))
		},
		"silenceURL": func(node string) string {
			if amURL == "" {
				return ""
			}
			return amURL + "/#/silences/new?filter=" + url.QueryEscape(matchers(map[string]string{"node": node}))
		},
		"sortedLabels": sortedLabels,
		"outcome":      func(o runbooks.Outcome) string { return string(o) },
	}
}

// matchers is an Alertmanager filter that matches exactly these labels:
// {a="1",b="2"}, values quoted as Alertmanager's parser reads them.
func matchers(labels map[string]string) string {
	var ms []string
	for _, l := range sortedLabels(labels) {
		ms = append(ms, l.Name+"="+strconv.Quote(l.Value))
	}
	return "{" + strings.Join(ms, ",") + "}"
}

type label struct{ Name, Value string }

func sortedLabels(m map[string]string) []label {
	out := make([]label, 0, len(m))
	for k, v := range m {
		out = append(out, label{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("15:04:05")
}

// human is a duration for people: 850ms, 42s, 3m05s, 2h10m, 3d4h.
func human(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	switch {
	case d < time.Second:
		return neg + d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%s%ds", neg, int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%s%dm%02ds", neg, int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%s%dh%02dm", neg, int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		d = d.Round(time.Hour)
		return fmt.Sprintf("%s%dd%dh", neg, int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
}

// statusClass is the CSS class of a run status or step outcome.
func statusClass(s any) string {
	switch fmt.Sprint(s) {
	case "succeeded", "done", "skipped":
		return "ok"
	case "failed", "escalated":
		return "bad"
	case "held", "deferred", "paused", "open":
		return "warn"
	case "running", "pending", "started":
		return "busy"
	case "dry-run", "cancelled":
		return "muted"
	}
	return ""
}

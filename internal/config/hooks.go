package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/common/model"
)

// Hook events (see internal/hooks).
var hookEvents = []string{"before-destructive", "run-finished", "escalated"}

// Hook timeouts: the default, and the most a run may wait for one answer.
const (
	defaultHookTimeout = 10 * time.Second
	maxHookTimeout     = 5 * time.Minute
)

// validateHook checks one hooks entry and sets its defaults (timeout 10s).
func validateHook(field string, h *Hook) error {
	if h.Name == "" {
		return fmt.Errorf("%s.name: required", field)
	}
	if h.URL == "" {
		return fmt.Errorf("%s.url: required", field)
	}
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s.url: not an http(s) URL", field)
	}
	if u.User != nil {
		return fmt.Errorf("%s.url: do not put credentials in the URL; use bearer_token_file", field)
	}
	if len(h.On) == 0 {
		return fmt.Errorf("%s.on: at least one event is required (%v)", field, hookEvents)
	}
	for j, e := range h.On {
		if !slices.Contains(hookEvents, e) {
			return fmt.Errorf("%s.on[%d]: unknown event %q (known: %v)", field, j, e, hookEvents)
		}
		if slices.Contains(h.On[:j], e) {
			return fmt.Errorf("%s.on[%d]: %q is listed twice", field, j, e)
		}
	}
	if h.Blocking {
		for j, e := range h.On {
			if e != "before-destructive" {
				return fmt.Errorf("%s.on[%d]: a blocking hook is only asked before-destructive, not on %s (add a second, non-blocking hook for it)", field, j, e)
			}
		}
	}
	if h.Timeout == 0 {
		h.Timeout = model.Duration(defaultHookTimeout)
	}
	if t := time.Duration(h.Timeout); t < 0 || t > maxHookTimeout {
		return fmt.Errorf("%s.timeout: %s is outside 0–%s", field, h.Timeout, model.Duration(maxHookTimeout))
	}
	return nil
}

// resolveHookFiles makes relative bearer_token_file paths relative to the
// config file's folder, as every other file the config names (the token
// is read at every request, from that path).
func (c *Config) resolveHookFiles(baseDir string) {
	for i := range c.Hooks {
		if f := c.Hooks[i].BearerTokenFile; f != "" && !filepath.IsAbs(f) {
			c.Hooks[i].BearerTokenFile = filepath.Join(baseDir, f)
		}
	}
}

// ValidateHookNames refuses two hooks of one name (names are metric
// labels and appear in hold reasons).
func ValidateHookNames(hooks []Hook) error {
	first := map[string]int{}
	for i, h := range hooks {
		if j, ok := first[h.Name]; ok {
			return fmt.Errorf("hooks[%d].name: %q is already used by hooks[%d]", i, h.Name, j)
		}
		first[h.Name] = i
	}
	return nil
}

package config

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// validateBlockingPods checks blocking_pods: a selector that parses (and
// selects something: an empty one would match every pod), namespaces
// that are namespace names, scope node or cluster.
func validateBlockingPods(prefix string, b *BlockingPods) error {
	if b == nil {
		return nil
	}
	p := prefix + ".blocking_pods"
	if strings.TrimSpace(b.LabelSelector) == "" {
		return fmt.Errorf("%s.label_selector: required (an empty selector would match every pod)", p)
	}
	if _, err := labels.Parse(b.LabelSelector); err != nil {
		return fmt.Errorf("%s.label_selector: %q: %w", p, b.LabelSelector, err)
	}
	for i, ns := range b.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("%s.namespaces[%d]: %q is not a namespace name: %s", p, i, ns, strings.Join(errs, "; "))
		}
	}
	switch b.Scope {
	case "", "node", "cluster":
	default:
		return fmt.Errorf("%s.scope: %q: want node (a matching pod on the node holds) or cluster (anywhere)", p, b.Scope)
	}
	return nil
}

// validateHandsOff checks hands_off: every entry is "key" or "key=value"
// with a valid key (and, for labels, a valid label value). no_defaults
// belongs to the global section: the default marks are checked there.
func validateHandsOff(prefix string, h *HandsOff) error {
	if h == nil {
		return nil
	}
	p := prefix + ".hands_off"
	if h.NoDefaults && prefix != "gates" {
		return fmt.Errorf("%s.no_defaults: only in the global gates section (the default marks are checked there)", p)
	}
	for _, l := range []struct {
		field   string
		entries []string
	}{{"taints", h.Taints}, {"labels", h.Labels}, {"annotations", h.Annotations}} {
		for i, e := range l.entries {
			if err := validateMark(l.field, e); err != nil {
				return fmt.Errorf("%s.%s[%d]: %w", p, l.field, i, err)
			}
		}
	}
	return nil
}

func validateMark(field, e string) error {
	if strings.TrimSpace(e) == "" {
		return fmt.Errorf("empty: want key or key=value")
	}
	k, v, _ := strings.Cut(e, "=")
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return fmt.Errorf("%q: key %q: %s", e, k, strings.Join(errs, "; "))
	}
	if field == "labels" {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("%q: value %q: %s", e, v, strings.Join(errs, "; "))
		}
	}
	return nil
}

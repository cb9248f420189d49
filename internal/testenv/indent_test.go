package testenv

import (
	"strings"
	"testing"
)

func TestIndent(t *testing.T) {
	var b strings.Builder
	w := Indent(&b)
	for _, s := range []string{"starting etcd… ", "ok (1.0s)\n", "a\nb\n", "c"} {
		if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if want := "  starting etcd… ok (1.0s)\n  a\n  b\n  c"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

package testenv

import (
	"fmt"
	"io"
	"strings"
)

// Indent returns a writer that prefixes every line written to w with two
// spaces: a component's progress lines (StartCluster's) nested under the
// caller's own.
func Indent(w io.Writer) io.Writer { return &indentWriter{w: w} }

type indentWriter struct {
	w   io.Writer
	mid bool // the last write ended mid-line
}

func (i *indentWriter) Write(b []byte) (int, error) {
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l == "" {
			continue
		}
		if !i.mid {
			l = "  " + l
		}
		fmt.Fprint(i.w, l)
		i.mid = !strings.HasSuffix(l, "\n")
	}
	return len(b), nil
}

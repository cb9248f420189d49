package main

import (
	"bytes"
	"strings"
	"testing"
)

// bmc-sim takes promslog's log flags, like the receiver.
func TestLogFlags(t *testing.T) {
	for _, bad := range []string{"--log.format=text", "--log.level=verbose"} {
		var errb bytes.Buffer
		if code := cli([]string{bad}, &errb); code != 2 || !strings.Contains(errb.String(), "unrecognized log") {
			t.Errorf("%s: exit %d %q", bad, code, errb.String())
		}
	}
	var errb bytes.Buffer
	if code := cli([]string{"--help"}, &errb); code != 0 || !strings.Contains(errb.String(), "--log.level=info") || !strings.Contains(errb.String(), "--log.format=logfmt") {
		t.Errorf("--help: exit %d %q", code, errb.String())
	}
}

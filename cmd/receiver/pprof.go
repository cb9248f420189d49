//go:build pprof

// A receiver built with -tags pprof serves Go's profiles
// (net/http/pprof) on a loopback port of its own, written to stderr at
// start — for measurements only (docs/benchmarks.md), never in the
// shipped image: the profiles are unauthenticated.
//
//	go build -tags pprof -o bin/receiver-pprof ./cmd/receiver
//	NODE_HEALER_PPROF=127.0.0.1:6060 bin/receiver-pprof serve …
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("NODE_HEALER_PPROF")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pprof: %v\n", err)
		return
	}
	fmt.Fprintf(os.Stderr, "pprof: serving Go profiles on http://%s/debug/pprof/\n", l.Addr())
	go http.Serve(l, nil)
}

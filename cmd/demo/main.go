// Command demo runs node-healer's pipeline on this machine, with no
// cluster needed: a redis-server, a private control plane (etcd,
// kube-apiserver, kwok playing 3 kubelets) and the receiver binary. It
// sends the receiver an Alertmanager webhook for a kernel deadlock on
// node-1, and shows the node cordoned, the Events and the run's timeline.
// Ctrl-C (or the end) stops every process it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	Receiver string        // path of the receiver binary
	Keep     bool          // keep everything running until Ctrl-C
	Nodes    int           // kwok nodes
	Timeout  time.Duration // for the whole demo
	Out      io.Writer
}

func main() {
	o := options{Out: os.Stdout}
	flag.StringVar(&o.Receiver, "receiver", "bin/receiver", "node-healer receiver binary (make build)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the pipeline running after the demo until Ctrl-C, to explore it")
	flag.IntVar(&o.Nodes, "nodes", 3, "number of kwok nodes")
	flag.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		os.Exit(1)
	}
}

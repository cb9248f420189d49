// Command demo runs node-healer's whole pipeline on this machine, every
// component real but the hardware: etcd, kube-apiserver and kwok (5 nodes
// with pods, PDBs and a StatefulSet pod), redis-server, a Redfish BMC
// simulator per node, node-problem-detector reading a kern.log file,
// Prometheus with the shipped rules, Alertmanager with the shipped config,
// and bin/receiver. It writes a kernel deadlock line into node-1's kern.log
// and prints the heal as it happens, then a summary table. Ctrl-C (or the
// end) stops every process it started.
//
//	bin/demo [-scenario=deadlock-hung|deadlock|readonly-fs|storm] [-keep]
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
	Scenario string        // see scenarios
	Keep     bool          // keep everything running until Ctrl-C
	Timeout  time.Duration // for the whole demo
	Dir      string        // working folder ("" = a new temporary one)
	Scrape   time.Duration // Prometheus scrape interval
	Out      io.Writer
}

func main() {
	o := options{Out: os.Stdout}
	flag.StringVar(&o.Receiver, "receiver", "bin/receiver", "node-healer receiver binary (make build)")
	flag.StringVar(&o.Scenario, "scenario", "deadlock-hung", "deadlock-hung | deadlock | readonly-fs | storm")
	flag.BoolVar(&o.Keep, "keep", false, "keep the pipeline running after the demo until Ctrl-C, to explore it")
	flag.DurationVar(&o.Timeout, "timeout", 6*time.Minute, "give up after this long")
	flag.StringVar(&o.Dir, "dir", "", "working folder for configs, logs and data (default: a new temporary folder, kept)")
	flag.DurationVar(&o.Scrape, "scrape-interval", time.Second, "Prometheus scrape interval (production setups use 15s–1m; see docs/benchmarks.md)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		os.Exit(1)
	}
}

// Command demo runs node-healer's whole pipeline on this machine, every
// component real but the hardware: etcd, kube-apiserver and kwok (5 nodes
// with pods, PDBs and a StatefulSet pod), redis-server, a BMC per node (the
// Redfish simulator, or with -bmc=ipmi OpenIPMI's ipmi_sim speaking IPMI
// 2.0 over LAN), node-problem-detector reading a kern.log file,
// Prometheus with the shipped rules, Alertmanager with the shipped config,
// and bin/receiver. It writes a kernel deadlock line into node-1's kern.log
// and prints the heal as it happens, then a summary table. Ctrl-C (or the
// end) stops every process it started.
//
//	bin/demo [-scenario=deadlock-hung|deadlock|deadlock-slow-boot|deadlock-slow-shutdown|readonly-fs|storm] [-bmc=redfish|ipmi] [-shipped] [-keep]
//
// -shipped runs on shipped timings instead of the demo's short ones (see
// pipeline.Options.Shipped): Prometheus at 30 s, node-healer's runbook
// defaults, a 2-minute simulated boot. bench/recovery.sh measures with it.
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
	Scrape   time.Duration // Prometheus scrape interval (0: the pipeline's default)
	Shipped  bool          // shipped timings (pipeline.Options.Shipped)
	BMC      string        // redfish | ipmi (pipeline.Options.BMC)
	Out      io.Writer
}

func main() {
	o := options{Out: os.Stdout}
	flag.StringVar(&o.Receiver, "receiver", "bin/receiver", "node-healer receiver binary (make build)")
	flag.StringVar(&o.Scenario, "scenario", "deadlock-hung", "deadlock-hung | deadlock | deadlock-slow-boot | deadlock-slow-shutdown | readonly-fs | storm")
	flag.BoolVar(&o.Keep, "keep", false, "keep the pipeline running after the demo until Ctrl-C, to explore it")
	flag.DurationVar(&o.Timeout, "timeout", 0, "give up after this long (default 6m, 15m with -shipped)")
	flag.StringVar(&o.Dir, "dir", "", "working folder for configs, logs and data (default: a new temporary folder, kept)")
	flag.DurationVar(&o.Scrape, "scrape-interval", 0, "Prometheus' global scrape interval (default 1s, 30s with -shipped; production setups use 15s–1m; see docs/benchmarks.md)")
	flag.BoolVar(&o.Shipped, "shipped", false, "shipped timings: Prometheus global scrape and evaluation 30s (NPD every 5s, as the PodMonitor), the shipped Alertmanager route, node-healer's and the reboot runbook's defaults, BMCs that take 2 minutes to boot and report BootProgress")
	flag.StringVar(&o.BMC, "bmc", "redfish", "the nodes' BMCs: redfish (the Redfish simulator on the DMTF mockup) or ipmi (one OpenIPMI ipmi_sim per node, IPMI 2.0 over LAN; the deadlock, deadlock-hung, readonly-fs and storm scenarios)")
	flag.Parse()
	if o.Timeout == 0 {
		o.Timeout = 6 * time.Minute
		if o.Shipped {
			o.Timeout = 15 * time.Minute
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		os.Exit(1)
	}
}

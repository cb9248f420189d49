// Command bmc-sim serves simulated Redfish BMCs for tests and the demo: the
// DMTF mockup's ComputerSystem cloned once per node, PowerState changed by
// ComputerSystem.Reset with configurable delays, BootProgress walking from
// power-on to OSRunning over the boot time, and injectable faults. See
// package internal/bmcsim.
//
//	bmc-sim --listen 127.0.0.1:8000 --systems kwok-node-0,kwok-node-1 \
//	        --boot-time 2m --password-file ./bmc-password --ignore-graceful
//
// main only parses flags into options and calls run.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stderr))
}

func cli(args []string, stderr io.Writer) int {
	app := kingpin.New("bmc-sim", "Redfish BMC simulator: one ComputerSystem per node, resets with delays and faults.")
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	exited := false
	app.Terminate(func(int) { exited = true })
	app.HelpFlag.Short('h')

	var o options
	app.Flag("listen", "Address to serve Redfish on.").Default("127.0.0.1:8000").StringVar(&o.Listen)
	app.Flag("mockup", "DMTF mockup directory (default: $NODE_HEALER_REDFISH_MOCKUP, then <repo>/../shared/redfish-mockups/public-rackmount1).").StringVar(&o.Mockup)
	app.Flag("systems", "Comma-separated system IDs, one per node (default: the mockup's own system).").StringVar(&o.Systems)
	app.Flag("boot-time", "How long a restarting or powering-on system takes from power-on to a running OS (PowerState On, BootProgress OSRunning); a server's firmware and OS boot take minutes.").Default("2m").DurationVar(&o.BootTime)
	app.Flag("shutdown-time", "How long a graceful shutdown/restart spends in PoweringOff.").Default("3s").DurationVar(&o.ShutdownTime)
	app.Flag("powering-on", "A restarting system shows PoweringOn until its OS runs (--no-powering-on: Off until On).").Default("true").BoolVar(&o.PoweringOn)
	app.Flag("username", "User name accepted for basic auth and sessions.").Default("admin").StringVar(&o.Username)
	app.Flag("password-file", "File holding the password; without it authentication is off.").StringVar(&o.PasswordFile)
	app.Flag("tls-cert", "TLS certificate file (with --tls-key); without it plain HTTP.").StringVar(&o.TLSCert)
	app.Flag("tls-key", "TLS key file.").StringVar(&o.TLSKey)
	app.Flag("off", "Comma-separated systems that start powered off.").StringVar(&o.Off)
	app.Flag("power-cycle", "Advertise PowerCycle (the mockup does not).").BoolVar(&o.PowerCycle)
	app.Flag("deny", "Comma-separated reset types to remove from the advertised ones.").StringVar(&o.Deny)
	app.Flag("action-info", "Advertise reset types through a ResetActionInfo resource instead of AllowableValues.").BoolVar(&o.ActionInfo)
	app.Flag("fault-systems", "Comma-separated systems the fault flags apply to (default: all).").StringVar(&o.FaultSystems)
	app.Flag("reset-status", "Answer resets with this HTTP status (e.g. 500).").IntVar(&o.Faults.ResetStatus)
	app.Flag("apply-despite-error", "With --reset-status: apply the reset anyway.").BoolVar(&o.Faults.ApplyDespiteError)
	app.Flag("reset-hang", "Apply the reset, then hold the answer this long.").DurationVar(&o.Faults.ResetHang)
	app.Flag("ignore-graceful", "Accept graceful restarts/shutdowns and do nothing (a hung OS).").BoolVar(&o.Faults.IgnoreGraceful)
	app.Flag("slow-boot", "With the fault systems: boot this long instead of --boot-time.").DurationVar(&o.Faults.BootTime)
	app.Flag("no-boot-progress", "With the fault systems: serve no BootProgress (older firmware).").BoolVar(&o.Faults.NoBootProgress)
	app.Flag("refuse", "Comma-separated reset types answered 400 although advertised.").StringVar(&o.Refuse)
	app.Flag("on-power-exec", "Command run (via sh -c) on every power change, with BMC_SYSTEM and BMC_POWER_STATE set.").StringVar(&o.OnPowerExec)
	var logCfg promslog.Config
	promslogflag.AddFlags(app, &logCfg) // --log.level, --log.format, as the receiver's

	if _, err := app.Parse(args); exited {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "bmc-sim: %v (try --help)\n", err)
		return 2
	}
	o.LogFormat, o.LogLevel = logCfg.Format.String(), logCfg.Level.String()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, stderr); err != nil {
		fmt.Fprintf(stderr, "bmc-sim: %v\n", err)
		return 1
	}
	return 0
}

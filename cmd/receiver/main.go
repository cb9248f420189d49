// Command receiver is node-healer: an Alertmanager webhook receiver that
// heals Kubernetes nodes with runbooks, under Redis locks.
//
// main only parses flags and environment into options and calls the
// command's run function; nothing else reads flags or env.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"

	"github.com/node-healer/node-healer/internal/redisconn"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs the command line and returns the exit code (tested directly).
func cli(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("receiver", "node-healer: heals Kubernetes nodes from Alertmanager alerts with runbooks, safely.")
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	exited := false
	app.Terminate(func(int) { exited = true }) // --help, --version: printed, then stop
	app.HelpFlag.Short('h')
	app.Version(version.Print("receiver")) // to the usage writer, stderr
	var logCfg promslog.Config
	promslogflag.AddFlags(app, &logCfg) // --log.level, --log.format: every command

	var so serveOptions
	serve := app.Command("serve", "Run the webhook receiver and the runbook workers.").Default()
	serve.Flag("config.file", "node-healer configuration file.").Default("node-healer.yml").StringVar(&so.ConfigFile)
	serve.Flag("web.listen-address", "Address to listen on for the webhook, API, health and metrics.").Default(":9095").StringVar(&so.ListenAddress)
	serve.Flag("web.config.file", "Web configuration file (exporter-toolkit): TLS, client certificates and basic auth for every endpoint. See https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md").Default("").StringVar(&so.WebConfigFile)
	serve.Flag("web.enable-lifecycle", "Enable POST /-/reload (configuration reload; SIGHUP reloads too).").Default("false").BoolVar(&so.EnableLifecycle)
	serve.Flag("ui.alertmanager-url", "Alertmanager's address for people: the operator page (/) links alerts and new silences there (default: the first configured Alertmanager).").Default("").StringVar(&so.UIAlertmanagerURL)
	serve.Flag("kubeconfig", "Kubeconfig file (default: $KUBECONFIG, then in-cluster config, then ~/.kube/config).").Envar("KUBECONFIG").StringVar(&so.Kubeconfig)
	serve.Flag("redis.url", "Redis URL, overrides redis.url in the config file (password: redis.password_file or $NODE_HEALER_REDIS_PASSWORD).").Envar("NODE_HEALER_REDIS_URL").StringVar(&so.RedisURL)
	serve.Flag("dry-run", "Log and record what each runbook would do; change nothing.").BoolVar(&so.DryRun)
	serve.Flag("replica", "Name of this replica in locks, events and the stream (default: hostname-pid).").Envar("POD_NAME").StringVar(&so.Replica)

	var cfgFiles []string
	var checkWebConfig string
	check := app.Command("check-config", "Validate configuration files (and the BMC inventory they name); exit 0 with a summary or 1 with the first error.")
	check.Arg("file", "Configuration files to check.").Required().StringsVar(&cfgFiles)
	check.Flag("web.config.file", "Also validate this web configuration file (as serve --web.config.file would).").StringVar(&checkWebConfig)

	var ro routeTestOptions
	route := app.Command("route", "Inspect routing.")
	routeTest := route.Command("test", "Print the route and runbook an alert with these labels would get, like `amtool config routes test`.")
	routeTest.Flag("config.file", "node-healer configuration file.").Default("node-healer.yml").StringVar(&ro.ConfigFile)
	routeTest.Arg("labels", "Alert labels as name=value.").StringsVar(&ro.Labels)

	var rs runsOptions
	runs := app.Command("runs", "Inspect runs stored in Redis.")
	runsList := runs.Command("list", "List recent runs.")
	runsShow := runs.Command("show", "Show one run's state and timeline.")
	for _, c := range []*kingpin.CmdClause{runsList, runsShow} {
		c.Flag("config.file", "node-healer configuration file (for redis settings).").Default("node-healer.yml").StringVar(&rs.ConfigFile)
		c.Flag("redis.url", "Redis URL, overrides the config file.").Envar("NODE_HEALER_REDIS_URL").StringVar(&rs.RedisURL)
		c.Flag("output", "Output format: text or json.").Short('o').Default("text").EnumVar(&rs.Output, "text", "json")
	}
	runsList.Flag("limit", "How many runs.").Default("20").IntVar(&rs.Limit)
	runsShow.Arg("id", "Run ID.").Required().StringVar(&rs.ID)

	var so2 statusOptions
	status := app.Command("status", "Safety state: pause, breaker, reboot budget, active, held, deferred and escalated runs (reads Redis).")
	pause := app.Command("pause", "Pause node-healer everywhere: no run starts, running ones hold before their next destructive step.")
	resume := app.Command("resume", "Lift a pause.")
	for _, c := range []*kingpin.CmdClause{status, pause, resume} {
		c.Flag("config.file", "node-healer configuration file (for redis settings).").Default("node-healer.yml").StringVar(&so2.ConfigFile)
		c.Flag("redis.url", "Redis URL, overrides the config file.").Envar("NODE_HEALER_REDIS_URL").StringVar(&so2.RedisURL)
	}
	status.Flag("output", "Output format: text or json.").Short('o').Default("text").EnumVar(&so2.Output, "text", "json")
	pause.Flag("reason", "Why (shown in status, logs and Events).").Required().StringVar(&so2.Reason)

	var ho healOptions
	heal := healCommand(app, &ho)

	cmd, err := app.Parse(args)
	if exited {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "receiver: %v (try --help)\n", err)
		return 2
	}
	so.Log = logOptionsOf(&logCfg)
	log := newLogger(so.Log, stderr)
	log.Debug("running command", append([]any{"command", cmd}, version.Slog()...)...)
	redisconn.SetLogger(log) // go-redis' own lines (runs, status, pause): structured, pool noise at debug
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case serve.FullCommand():
		err = runServe(ctx, so, stderr)
	case check.FullCommand():
		err = runCheckConfig(cfgFiles, checkWebConfig, stdout)
	case routeTest.FullCommand():
		err = runRouteTest(ro, stdout)
	case runsList.FullCommand():
		err = runRunsList(ctx, rs, stdout)
	case runsShow.FullCommand():
		err = runRunsShow(ctx, rs, stdout)
	case status.FullCommand():
		err = runStatus(ctx, so2, stdout)
	case pause.FullCommand():
		err = runPause(ctx, so2, true, stdout)
	case resume.FullCommand():
		err = runPause(ctx, so2, false, stdout)
	case heal.FullCommand():
		ho.Token = os.Getenv("NODE_HEALER_TOKEN")
		err = runHeal(ctx, ho, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "receiver: %v\n", err)
		return 1
	}
	return 0
}

// buildInfo is node_healer_build_info{version, revision, branch, goversion,
// goos, goarch, tags} = 1, from the values -ldflags -X set in
// github.com/prometheus/common/version (Makefile, Dockerfile).
func buildInfo() prometheus.Collector {
	return versioncollector.NewCollector("node_healer")
}

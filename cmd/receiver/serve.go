package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/handlers"
	"github.com/node-healer/node-healer/internal/intake"
	"github.com/node-healer/node-healer/internal/kube"
	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/reconcile"
	"github.com/node-healer/node-healer/internal/redisconn"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/worker"
)

type serveOptions struct {
	ConfigFile    string
	ListenAddress string
	Kubeconfig    string
	RedisURL      string
	Replica       string
	DryRun        bool
	Log           logOptions

	// WebConfigFile is exporter-toolkit's web configuration (TLS, client
	// certificates, basic auth) for every endpoint; empty: plain HTTP.
	WebConfigFile string
	// EnableLifecycle allows POST /-/reload (else 403).
	EnableLifecycle bool
	// UIAlertmanagerURL is where the operator page links into
	// Alertmanager's UI (default: the first configured Alertmanager).
	UIAlertmanagerURL string

	// statusFromAPI: the runbooks' waits GET the node and its Lease
	// instead of reading the informers (tests compare the two).
	statusFromAPI bool
	// uiRefresh: the operator page's auto-refresh period (default 10s).
	uiRefresh time.Duration
}

// newRedis builds the client for the configured topology (single,
// Sentinel or Cluster, optionally TLS), with the --redis.url override and
// $NODE_HEALER_REDIS_PASSWORD when no password file is configured.
func newRedis(cfg *config.Config, urlOverride string) (redis.UniversalClient, error) {
	return redisconn.New(cfg.Redis, redisconn.Options{URL: urlOverride, Password: os.Getenv("NODE_HEALER_REDIS_PASSWORD")})
}

func replicaName(o string) string {
	if o != "" {
		return o
	}
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

func runServe(ctx context.Context, o serveOptions, logw io.Writer) error {
	log := newLogger(o.Log, logw)
	redirectKlog(log)
	cfg, err := loadConfig(o.ConfigFile)
	if err != nil {
		return err
	}
	if err := web.Validate(o.WebConfigFile); err != nil {
		return fmt.Errorf("--web.config.file %s: %w", o.WebConfigFile, err)
	}
	if err := checkUIAlertmanagerURL(o.UIAlertmanagerURL); err != nil {
		return err
	}
	reg := registry()
	replica := replicaName(o.Replica)

	redisconn.SetLogger(log)
	rdb, err := newRedis(cfg, o.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	go func() {
		// Say at start-up what /-/ready will say: a certificate that does
		// not verify is a configuration error, not an outage.
		pctx, c := context.WithTimeout(ctx, 5*time.Second)
		defer c()
		if err := redisconn.Ping(pctx, rdb); err != nil && ctx.Err() == nil {
			log.Error("redis not usable at start-up; /-/ready fails and webhooks answer 503 until it is", "redis", cfg.Redis.Describe(), "err", err)
		}
	}()

	restCfg, err := kube.Config(o.Kubeconfig, cfg.Kubernetes.QPS, cfg.Kubernetes.Burst)
	if err != nil {
		return err
	}
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo())
	kube.CountRequests(restCfg, promReg)
	client, err := kube.NewClient(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	nodeCache := kube.StartNodeCache(ctx, client, 0)
	m := metrics.New(promReg, metrics.StepsOf(reg))
	// Routes and the webhook token are read through live, which a reload
	// (SIGHUP, POST /-/reload) swaps; the rest of cfg is fixed until restart.
	live, err := newLiveConfig(o.ConfigFile, o.WebConfigFile, cfg, promReg, log)
	if err != nil {
		return err
	}

	prefix := cfg.Redis.KeyPrefix
	q := queue.New(rdb, queue.Options{Prefix: prefix, DedupeTTL: time.Duration(cfg.Redis.DedupeTTL), ClaimAfter: time.Duration(cfg.Workers.ClaimAfter),
		MinReplicas: cfg.Redis.MinReplicasAcked, ReplicationTimeout: time.Duration(cfg.Redis.ReplicationTimeout)})
	store := runstore.New(rdb, prefix, time.Duration(cfg.Redis.RunTTL), runstore.Options{Log: log, Registerer: promReg,
		MinReplicas: cfg.Redis.MinReplicasAcked, ReplicationTimeout: time.Duration(cfg.Redis.ReplicationTimeout)})
	locker := locks.New(rdb, prefix, locks.Options{Registerer: promReg,
		MinReplicas: cfg.Redis.MinReplicasAcked, ReplicationTimeout: time.Duration(cfg.Redis.ReplicationTimeout)})
	// Events (events.k8s.io/v1) are written in the background; Stop, once
	// the workers are done, writes what is still queued.
	events := kube.NewEvents(client, kube.EventOptions{Instance: replica, NodeUID: nodeCache.NodeUID, Registerer: promReg, Log: log})
	defer events.Stop(5 * time.Second)
	nodes := &kube.Nodes{Client: client, Instance: replica, Events: events, Cache: nodeCache}
	if o.statusFromAPI {
		nodes.Cache = nil
	}
	power, closePower, err := newPower(cfg, client, promReg, log)
	if err != nil {
		return err
	}
	defer closePower()
	deps := runbooks.Deps{
		Nodes: nodes, Status: nodes, Writer: nodes, Power: power, Alerts: q,
		Drain: kube.RunbookDrainer{D: &kube.Drainer{Client: client, Log: log}},
		Exec:  &kube.NodeExec{Client: client, Namespace: cfg.NodeExec.Namespace, Image: cfg.NodeExec.Image, Log: log},
	}
	gate, err := newGate(cfg, rdb, cacheNodes{nodeCache}, promReg, log)
	if err != nil {
		return err
	}
	gate.Alerts = q
	gate.Windows = live.Windows
	if err := installChecks(gate, gateEnv{ctx: ctx, cfg: cfg, client: client, nodes: nodeCache, reg: promReg, log: log}); err != nil {
		return err
	}
	if err := resetRunCountOnClear(ctx, nodeCache, rdb, cfg, o.DryRun, log); err != nil {
		return err
	}
	if gate.Silences == nil {
		log.Warn("no alertmanagers configured: Alertmanager silences do not pause runs (receiver pause still does), and node-healer's own alerts (escalations, held and failed runs) are not sent")
	}
	notifier, err := newNotifier(cfg, rdb, store, nodeCache, reg, replica, promReg, log)
	if err != nil {
		return err
	}
	pool := &worker.Pool{
		Queue: q, Locker: locker, Store: store, Name: replica, Count: cfg.Workers.Count,
		LockTTL: time.Duration(cfg.Locks.TTL), Log: log, Metrics: m, Gate: gate, Alerts: q,
		Executor: &runbooks.Executor{Registry: reg, Store: store, Deps: deps, Log: log, Observer: m, Worker: replica, Gate: gate,
			AfterStep: failpointAfterStep(log), OnFinish: startHooks(ctx, gate, cfg, promReg, log)},
	}
	// Half-done work nothing tracks any more (Redis lost a stream entry or
	// a run record) is re-queued or escalated within interval + grace.
	// Its own Locker: node_healer_lock_acquire_total counts workers only.
	rec := &reconcile.Reconciler{
		Runs: store, Stream: q, Locker: locks.New(rdb, prefix), Redis: rdb, Prefix: prefix,
		Nodes: nodeCache, Kube: nodes, ExcludeLabel: cfg.Safety.ExcludeLabel, DryRun: o.DryRun,
		Interval: time.Duration(cfg.Workers.ReconcileInterval), Grace: 2 * time.Duration(cfg.Locks.TTL),
		LockTTL: time.Duration(cfg.Locks.TTL), Log: log, Metrics: reconcile.NewMetrics(promReg),
	}

	// Re-sent payloads this replica has just persisted are answered after
	// one GET (internal/intake/recent.go); not on Redis Cluster (nil).
	recent := intake.NewRecent(rdb, prefix)
	if recent != nil {
		promReg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "node_healer_webhook_resends_answered_total",
			Help: "Webhook payloads answered without the full intake: every alert in them was persisted by this replica within the last 30s and Redis still holds it (same epoch, no reconnection).",
		}, func() float64 { return float64(recent.Hits()) }))
	}
	e := handlers.New(handlers.Options{
		Router: live, Intake: &intake.Intake{Queue: q, Firing: gate.Firing, Kick: gate.Breaker().Kick, Recent: recent}, Nodes: nodeCache, CurrentAuth: live.Auth,
		Reload: live.Reload, EnableLifecycle: o.EnableLifecycle,
		Status: func(ctx context.Context) (any, error) { return gate.Status(ctx, store) }, Runs: store,
		MaxBody: cfg.Webhook.MaxBodyBytes, DryRun: o.DryRun, Metrics: m, Gatherer: promReg, Log: log,
		UI: uiOptions(uiEnv{cfg: cfg, live: live, o: o, rdb: rdb, gate: gate, store: store, client: client, cache: nodeCache, nodes: nodes, runbooks: reg.Names()}),
		Ready: []handlers.Check{
			{Name: "redis", Func: func(ctx context.Context) error { return redisconn.Ping(ctx, rdb) }},
			{Name: "kubernetes", Func: func(ctx context.Context) error {
				if !nodeCache.Synced() {
					return errors.New("node cache not synced yet")
				}
				return client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
			}},
		},
	})
	srv := &http.Server{Addr: o.ListenAddress, Handler: e, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ln, err := net.Listen("tcp", o.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.ListenAddress, err)
	}
	log.Info("node-healer starting", "listen", ln.Addr().String(), "replica", replica, "routes", len(cfg.Routes),
		"workers", cfg.Workers.Count, "dry_run", o.DryRun, "web_config", o.WebConfigFile, "lifecycle", o.EnableLifecycle, "redis", cfg.Redis.Describe(),
		"version", version.Version, "revision", version.GetRevision(), "branch", version.Branch, "build_date", version.BuildDate, "go", version.GoVersion)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer reloadOnSIGHUP(ctx, live)()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		// exporter-toolkit applies the web configuration file to every
		// route: TLS (certificates re-read per handshake), client
		// certificates, basic_auth_users (re-read per request).
		noSystemd := false
		err := web.Serve(ln, srv, &web.FlagConfig{WebListenAddresses: &[]string{o.ListenAddress},
			WebSystemdSocket: &noSystemd, WebConfigFile: &o.WebConfigFile}, log)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
			cancel()
		}
	})
	wg.Go(func() {
		syncCtx, c := context.WithTimeout(ctx, 30*time.Second)
		defer c()
		if !nodeCache.WaitSynced(syncCtx) && ctx.Err() == nil {
			log.Warn("node cache not synced after 30s: the API server is unreachable or RBAC denies listing nodes; alerts are accepted unverified and runs wait")
		}
		go watchSafety(ctx, gate, store, m, log)
		go gate.KeepSlotsLoop(ctx, store)
		go rec.Run(ctx)
		if notifier != nil {
			go notifier.Run(ctx)
		}
		if err := pool.Run(ctx); err != nil {
			errc <- fmt.Errorf("workers: %w", err)
			cancel()
		}
	})
	<-ctx.Done()
	log.Info("shutting down: finishing requests; runs in progress stop before their next step and are resumed by another replica")
	shCtx, c := context.WithTimeout(context.Background(), 10*time.Second)
	defer c()
	_ = srv.Shutdown(shCtx)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the Sentinels monitor the primary under.
const SentinelMaster = "mymaster"

// SentinelOptions: passwords, when set, are required by the data nodes
// (requirepass, masterauth) and by the Sentinels (requirepass; they reach
// the data nodes with Password).
type SentinelOptions struct {
	Password         string
	SentinelPassword string
	// Replicas is the number of replicas (default 1). With
	// min_replicas_acked: 1 a set needs two: once the only replica is
	// promoted, nothing is left to acknowledge a write.
	Replicas int
}

// RedisSentinel is a primary, one replica (or SentinelOptions.Replicas)
// and three Sentinels (quorum 2,
// down-after-milliseconds 1000, failover-timeout 5000) on loopback, with
// persistence off: SIGKILL of the primary gets the replica promoted in
// about eight seconds.
type RedisSentinel struct {
	MasterName string
	Sentinels  []string // host:port of each Sentinel
	dir        string
	opts       SentinelOptions
	servers    map[string]*proc // data nodes by address
	sentinels  []*proc
}

// StartRedisSentinel starts the processes under dir and returns once the
// replicas have synced and every Sentinel knows the replicas and the
// other two Sentinels (so a failover can be agreed on).
func StartRedisSentinel(ctx context.Context, dir string, opts SentinelOptions) (*RedisSentinel, error) {
	bin, err := RedisServerPath()
	if err != nil {
		return nil, err
	}
	s := &RedisSentinel{MasterName: SentinelMaster, dir: dir, opts: opts, servers: map[string]*proc{}}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	primary, err := s.startServer(bin, "primary")
	if err != nil {
		return nil, err
	}
	n := max(opts.Replicas, 1)
	var replicas []string
	for i := range n {
		replica, err := s.startServer(bin, fmt.Sprintf("replica%d", i), "--replicaof", "127.0.0.1", port(primary))
		if err != nil {
			return nil, err
		}
		replicas = append(replicas, replica)
	}
	for i := range 3 {
		if err := s.startSentinel(bin, i, primary); err != nil {
			return nil, err
		}
	}
	// The replicas have the data set (WAIT right after start can answer 0).
	for _, replica := range replicas {
		rc := redis.NewClient(&redis.Options{Addr: replica, Password: opts.Password})
		err := s.servers[replica].waitUntil(ctx, 20*time.Second, func(ctx context.Context) error {
			info, err := rc.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "master_link_status:up") {
				return fmt.Errorf("replica not in sync: %s", info)
			}
			return nil
		})
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	for i, addr := range s.Sentinels {
		sc := s.sentinelClient(addr)
		err := s.sentinels[i].waitUntil(ctx, 30*time.Second, func(ctx context.Context) error {
			reps, err := sc.Replicas(ctx, s.MasterName).Result()
			if err != nil {
				return err
			}
			peers, err := sc.Sentinels(ctx, s.MasterName).Result()
			if err != nil {
				return err
			}
			if len(reps) < n || len(peers) < 2 {
				return fmt.Errorf("sentinel knows %d replicas and %d other sentinels", len(reps), len(peers))
			}
			return nil
		})
		sc.Close()
		if err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// startServer starts a redis-server of the set, on another port if its
// own was taken (onFreePort).
func (s *RedisSentinel) startServer(bin, name string, extra ...string) (string, error) {
	var addr string
	err := onFreePort(func(attempt int) error {
		var err error
		addr, err = s.startServerOnce(bin, fmt.Sprintf("%s-%d", name, attempt), name, extra...)
		return err
	})
	return addr, err
}

func (s *RedisSentinel) startServerOnce(bin, dirName, name string, extra ...string) (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	d := filepath.Join(s.dir, dirName)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	args := []string{"--port", strconv.Itoa(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d}
	if pw := s.opts.Password; pw != "" {
		args = append(args, "--requirepass", pw, "--masterauth", pw)
	}
	args = append(args, extra...)
	pr, err := startProc("redis-server "+name, bin, args, filepath.Join(d, "redis.log"))
	if err != nil {
		return "", err
	}
	if err := pr.waitOwn(&redis.Options{Addr: addr, Password: s.opts.Password}, 10*time.Second); err != nil {
		pr.stop(0)
		return "", pr.fail(err)
	}
	s.servers[addr] = pr
	return addr, nil
}

func (s *RedisSentinel) startSentinel(bin string, i int, primary string) error {
	p, err := FreePort()
	if err != nil {
		return err
	}
	d := filepath.Join(s.dir, fmt.Sprintf("sentinel%d", i))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	// Sentinel rewrites its config file: it must be writable and its own.
	conf := filepath.Join(d, "sentinel.conf")
	body := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor %s 127.0.0.1 %s 2
sentinel down-after-milliseconds %[3]s 1000
sentinel failover-timeout %[3]s 5000
sentinel parallel-syncs %[3]s 1
`, p, d, s.MasterName, port(primary))
	if pw := s.opts.Password; pw != "" {
		body += fmt.Sprintf("sentinel auth-pass %s %s\n", s.MasterName, pw)
	}
	if pw := s.opts.SentinelPassword; pw != "" {
		body += fmt.Sprintf("requirepass %s\n", pw)
	}
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return err
	}
	pr, err := startProc(fmt.Sprintf("redis-sentinel %d", i), bin, []string{conf, "--sentinel"}, filepath.Join(d, "sentinel.log"))
	if err != nil {
		return err
	}
	s.sentinels = append(s.sentinels, pr)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	s.Sentinels = append(s.Sentinels, addr)
	if err := pr.waitOwn(&redis.Options{Addr: addr, Password: s.opts.SentinelPassword}, 10*time.Second); err != nil {
		return pr.fail(err)
	}
	return nil
}

// Primary asks a Sentinel for the current primary's address.
func (s *RedisSentinel) Primary(ctx context.Context) (string, error) {
	var last error
	for _, addr := range s.Sentinels {
		sc := s.sentinelClient(addr)
		hp, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel names a primary for %s: %v", s.MasterName, last)
}

func (s *RedisSentinel) sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, Password: s.opts.SentinelPassword})
}

// KillPrimary SIGKILLs the current primary (no restart: its data is gone)
// and returns its address.
func (s *RedisSentinel) KillPrimary(ctx context.Context) (string, error) {
	addr, err := s.Primary(ctx)
	if err != nil {
		return "", err
	}
	p := s.servers[addr]
	if p == nil {
		return "", fmt.Errorf("primary %s is not one of this set's servers", addr)
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return addr, nil
}

// WaitFailover waits until the Sentinels name a primary other than old.
func (s *RedisSentinel) WaitFailover(ctx context.Context, old string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		cur, err := s.Primary(ctx)
		if err == nil && cur != old {
			return cur, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no failover from %s within %s (now %q, %v)\n%s", old, timeout, cur, err, s.LogTails(15))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// LogTails returns the last n lines of every process's log.
func (s *RedisSentinel) LogTails(n int) string {
	var b strings.Builder
	for _, p := range s.all() {
		fmt.Fprintf(&b, "--- %s (%s) ---\n%s\n", p.name, p.log, tailFile(p.log, n))
	}
	return b.String()
}

func (s *RedisSentinel) all() []*proc {
	ps := append([]*proc{}, s.sentinels...)
	for _, p := range s.servers {
		ps = append(ps, p)
	}
	return ps
}

// Stop kills every process.
func (s *RedisSentinel) Stop() {
	for _, p := range s.all() {
		p.stop(0)
	}
}

// Replicas returns the addresses of the data nodes that are not the
// current primary (and still run).
func (s *RedisSentinel) Replicas(ctx context.Context) ([]string, error) {
	primary, err := s.Primary(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for addr, p := range s.servers {
		if addr != primary && !p.exited() {
			out = append(out, addr)
		}
	}
	return out, nil
}

// CutOffReplicas makes the replicas miss every write from now on while
// the primary goes on acknowledging them, the way a partition or a slow
// link does: each replica is frozen (SIGSTOP), then the primary drops its
// replication connections (CLIENT KILL TYPE replica), so nothing written
// afterwards reaches them, not even a socket buffer. ThawReplicas undoes
// the freeze; a replica thawed after the primary died cannot catch up.
func (s *RedisSentinel) CutOffReplicas(ctx context.Context) error {
	primary, err := s.Primary(ctx)
	if err != nil {
		return err
	}
	reps, err := s.Replicas(ctx)
	if err != nil {
		return err
	}
	for _, addr := range reps {
		if err := s.servers[addr].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return fmt.Errorf("freeze replica %s: %w", addr, err)
		}
	}
	pc := redis.NewClient(&redis.Options{Addr: primary, Password: s.opts.Password})
	defer pc.Close()
	if err := pc.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		return fmt.Errorf("drop replication links on %s: %w", primary, err)
	}
	// The primary no longer lists them as connected.
	return s.servers[primary].waitUntil(ctx, 10*time.Second, func(ctx context.Context) error {
		info, err := pc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_slaves:0") {
			return fmt.Errorf("primary still lists replicas: %s", info)
		}
		return nil
	})
}

// ThawReplicas resumes replicas frozen by CutOffReplicas (SIGCONT).
func (s *RedisSentinel) ThawReplicas() error {
	for addr, p := range s.servers {
		if p.exited() {
			continue
		}
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			return fmt.Errorf("thaw %s: %w", addr, err)
		}
	}
	return nil
}

// Client is a plain client on one data node (e.g. the promoted replica,
// to see what survived a failover).
func (s *RedisSentinel) Client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: s.opts.Password})
}

package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of three masters (no replicas), each a
// redis-server process on free loopback ports in its own directory, with
// persistence off. Keys a script, transaction or MULTI touches together
// must share a hash tag on it, or Redis answers CROSSSLOT.
type RedisCluster struct {
	Addrs []string // host:port of each master
	nodes []*clusterNode
}

type clusterNode struct {
	addr string
	log  string
	p    *proc // nil once stopped
}

// RedisCLIPath finds redis-cli: $REDIS_CLI, then PATH (Debian's
// redis-tools, installed with redis-server).
func RedisCLIPath() (string, error) {
	if p := os.Getenv("REDIS_CLI"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-cli")
	if err != nil {
		return "", fmt.Errorf("redis-cli not found on PATH (install it: apt-get install -y redis-tools): %w", err)
	}
	return p, nil
}

// StartRedisCluster starts three cluster-enabled redis-servers under dir,
// joins them with `redis-cli --cluster create` (all 16384 slots split
// between them) and waits until every node reports cluster_state:ok.
func StartRedisCluster(ctx context.Context, dir string) (*RedisCluster, error) {
	bin, err := RedisServerPath()
	if err != nil {
		return nil, err
	}
	cli, err := RedisCLIPath()
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	for i := range 3 {
		n, err := startClusterNodeRetrying(bin, filepath.Join(dir, fmt.Sprintf("node%d", i)))
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		c.Addrs = append(c.Addrs, n.addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, cli, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	if err := c.waitOK(cctx); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// startClusterNodeRetrying starts a node and waits until it listens, on
// other ports if its own were taken (onFreePort).
func startClusterNodeRetrying(bin, dir string) (*clusterNode, error) {
	var n *clusterNode
	err := onFreePort(func(attempt int) error {
		var err error
		n, err = startClusterNode(bin, filepath.Join(dir, fmt.Sprintf("attempt%d", attempt)))
		if err != nil {
			return err
		}
		if err := n.waitListening(10 * time.Second); err != nil {
			err = n.p.fail(err)
			n.stop()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// waitListening waits until the node answers on its address (waitOwn).
func (n *clusterNode) waitListening(timeout time.Duration) error {
	return n.p.waitOwn(&redis.Options{Addr: n.addr}, timeout)
}

// clusterPort is FreePort; a test takes a port first to see the retry.
var clusterPort = FreePort

func startClusterNode(bin, dir string) (*clusterNode, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := clusterPort()
	if err != nil {
		return nil, err
	}
	bus, err := clusterPort()
	if err != nil {
		return nil, err
	}
	n := &clusterNode{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), log: filepath.Join(dir, "redis.log")}
	// cluster-port: the bus port is port+10000 by default, which may be
	// taken or above 65535 for a kernel-chosen port.
	n.p, err = startProc("redis-server (cluster node)", bin, []string{"--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(bus),
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"}, n.log)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// waitOK waits until every node answers cluster_state:ok.
func (c *RedisCluster) waitOK(ctx context.Context) error {
	for _, n := range c.nodes {
		rdb := redis.NewClient(&redis.Options{Addr: n.addr})
		var last string
		for {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			last = fmt.Sprint(info, err)
			select {
			case <-ctx.Done():
				rdb.Close()
				return fmt.Errorf("redis cluster node %s not ok: %s", n.addr, last)
			case <-time.After(50 * time.Millisecond):
			}
		}
		rdb.Close()
	}
	return nil
}

// Client returns a cluster client seeded with every master. Close it when
// done.
func (c *RedisCluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
}

// Flush empties every master.
func (c *RedisCluster) Flush(ctx context.Context) error {
	rdb := c.Client()
	defer rdb.Close()
	return rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.FlushAll(ctx).Err()
	})
}

// LogTails returns the last n lines of each node's log, for a failed test.
func (c *RedisCluster) LogTails(n int) string {
	var b strings.Builder
	for _, nd := range c.nodes {
		fmt.Fprintf(&b, "--- redis cluster node %s ---\n%s\n", nd.addr, tailFile(nd.log, n))
	}
	return b.String()
}

// Stop kills every node (their data is lost: persistence is off).
func (c *RedisCluster) Stop() {
	for _, n := range c.nodes {
		n.stop()
	}
}

func (n *clusterNode) stop() {
	n.p.kill()
	n.p = nil
}

// IsCrossSlot reports whether err is Redis Cluster's refusal of keys in
// different hash slots (CROSSSLOT), directly or as go-redis wraps it.
func IsCrossSlot(err error) bool {
	return err != nil && strings.Contains(err.Error(), "CROSSSLOT")
}

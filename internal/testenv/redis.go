package testenv

import (
	"bufio"
	"context"
	"errors"
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

// Redis is a redis-server process started on a free loopback port.
type Redis struct {
	Addr string
	p    *proc // nil once stopped
	dir  string
	port int
}

// RedisServerPath finds redis-server: $REDIS_SERVER, then PATH.
func RedisServerPath() (string, error) {
	if p := os.Getenv("REDIS_SERVER"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found on PATH (install it: apt-get install -y redis-server): %w", err)
	}
	return p, nil
}

// StartRedis starts a private redis-server with persistence off, in dir.
func StartRedis(dir string) (*Redis, error) {
	bin, err := RedisServerPath()
	if err != nil {
		return nil, err
	}
	var r *Redis
	err = onFreePort(func(int) error {
		port, err := FreePort()
		if err != nil {
			return err
		}
		r = &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, port: port}
		if err := r.start(bin); err != nil {
			if !errors.Is(err, errExited) {
				r.Stop()
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// onFreePort calls start (a server started on a port from FreePort) up to
// three times while it fails with errExited. FreePort closes its listener
// before the server binds the port, and a test package running beside
// this one can take it in between (seen in make test: "Failed listening on
// port … aborting"); then the server is started again on another port.
func onFreePort(start func(attempt int) error) error {
	var err error
	for attempt := range 3 {
		if err = start(attempt); !errors.Is(err, errExited) {
			return err
		}
	}
	return err
}

func (r *Redis) start(bin string) error {
	p, err := startProc("redis-server", bin, []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir}, filepath.Join(r.dir, fmt.Sprintf("redis-%d.log", r.port)))
	if err != nil {
		return err
	}
	r.p = p
	if err := p.waitOwn(&redis.Options{Addr: r.Addr}, 10*time.Second); err != nil {
		return p.fail(err)
	}
	return nil
}

// errExited: the server exited before it listened (its port taken).
var errExited = errors.New("redis-server exited before it listened")

// waitOwn waits until p, a redis-server (or Sentinel), answers at o.Addr
// (with o's password and TLS): by its process ID, since whoever took the
// port answers TCP too.
func (p *proc) waitOwn(o *redis.Options, timeout time.Duration) error {
	opts := *o
	opts.MaxRetries, opts.DialTimeout, opts.ReadTimeout, opts.ContextTimeoutEnabled = -1, 200*time.Millisecond, 200*time.Millisecond, true
	addr := opts.Addr
	rdb := redis.NewClient(&opts)
	defer rdb.Close()
	want := fmt.Sprintf("process_id:%d\r\n", p.pid())
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%w (%s)", errExited, addr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := rdb.Info(ctx, "server").Result()
		cancel()
		if err == nil && strings.Contains(info, want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server not listening on %s after %s (last: %v)", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (its data is lost: persistence is off).
func (r *Redis) Stop() {
	if r.p != nil {
		r.p.kill()
		// Wait until the port is closed so a restart can bind it.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			c, err := net.DialTimeout("tcp", r.Addr, 100*time.Millisecond)
			if err != nil {
				break
			}
			c.Close()
			time.Sleep(20 * time.Millisecond)
		}
		r.p = nil
	}
}

// Restart starts the server again on the same port (after Stop).
func (r *Redis) Restart() error {
	bin, err := RedisServerPath()
	if err != nil {
		return err
	}
	return r.start(bin)
}

// URL is the redis:// URL for this server, database db.
func (r *Redis) URL(db int) string { return fmt.Sprintf("redis://%s/%d", r.Addr, db) }

// Client returns a go-redis client for database db.
func (r *Redis) Client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.Addr, DB: db})
}

// Flush empties every database.
func (r *Redis) Flush(ctx context.Context) error {
	c := r.Client(0)
	defer c.Close()
	return c.FlushAll(ctx).Err()
}

// FreePort asks the kernel for a free TCP port on loopback.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailFile returns the last n lines of a log file, for error messages.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

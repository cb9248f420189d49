package testenv

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterNodeRetriesATakenPort: a cluster node whose port was taken
// between FreePort and its bind (another test package, in make test) is
// started again on other ports instead of failing the test.
func TestClusterNodeRetriesATakenPort(t *testing.T) {
	bin, err := RedisServerPath()
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	calls := 0
	clusterPort = func() (int, error) {
		calls++
		if calls == 1 {
			return taken.Addr().(*net.TCPAddr).Port, nil
		}
		return FreePort()
	}
	defer func() { clusterPort = FreePort }()
	dir := t.TempDir()
	n, err := startClusterNodeRetrying(bin, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer n.stop()
	if n.addr == taken.Addr().String() || calls != 4 {
		t.Errorf("node on %s after %d port picks; want another port than the taken %s, on the second attempt", n.addr, calls, taken.Addr())
	}
	log, _ := os.ReadFile(filepath.Join(dir, "attempt0", "redis.log"))
	if !strings.Contains(string(log), "in use") && !strings.Contains(string(log), "Failed listening") {
		t.Errorf("first attempt's log does not say the port was taken:\n%s", log)
	}
	if err := n.waitListening(time.Second); err != nil {
		t.Errorf("node does not answer: %v", err)
	}
}

// TestRedisStartsOnATakenPort: StartRedis neither fails nor talks to
// whoever took its port: waitOwn checks the server's process ID, and a
// server that could not bind is started again on another port.
func TestRedisStartsOnATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bin, err := RedisServerPath()
	if err != nil {
		t.Fatal(err)
	}
	port := taken.Addr().(*net.TCPAddr).Port
	r := &Redis{Addr: taken.Addr().String(), dir: t.TempDir(), port: port}
	if err = r.start(bin); err == nil {
		r.Stop()
	}
	if !errors.Is(err, errExited) {
		t.Fatalf("a server on a taken port: %v; want errExited (its port answered TCP, but not as it)", err)
	}
}

// Package benchenv holds what the benchmark programs under bench/ share:
// running the receiver binary the way production does, on a free port.
package benchenv

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/node-healer/node-healer/internal/testenv"
)

// Receiver is a `receiver serve` process.
type Receiver struct {
	URL string // http://127.0.0.1:PORT
	Cmd *exec.Cmd
}

// StartReceiver runs bin serve with cfgFile against kubeconfig, its output
// to out, and waits (up to 30 s) until /-/ready answers 200.
func StartReceiver(bin, cfgFile, kubeconfig string, out io.Writer, args ...string) (*Receiver, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, append([]string{"serve", "--config.file=" + cfgFile, "--web.listen-address=" + addr, "--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &Receiver{URL: "http://" + addr, Cmd: cmd}
	for i := 0; ; i++ {
		if resp, err := http.Get(r.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r, nil
			}
		}
		if i > 300 {
			r.Stop()
			return nil, fmt.Errorf("receiver not ready after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop interrupts the receiver and waits for it.
func (r *Receiver) Stop() {
	_ = r.Cmd.Process.Signal(os.Interrupt)
	_ = r.Cmd.Wait()
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// The webhook load is sent from a process of its own, as Alertmanager is
// one: in the harness's process its goroutines shared a Go runtime (GC,
// scheduler) with the BMC simulator of every node, the informers and the
// samplers, and the latency they measured included those pauses. The
// harness starts its own executable again with loadgenEnv set; the child
// reads a loadJob on stdin (the token travels there, not in argv), sends,
// and writes a loadOut on stdout. -load-in-process keeps the old way, for
// comparison in one run.
const loadgenEnv = "NODE_HEALER_SCALE_LOADGEN"

type loadJob struct {
	URLs  []string
	Token string
	Body  []byte
	Rate  int
	For   time.Duration
}

type loadOut struct {
	Sent, Late int
	Latencies  []time.Duration   // sorted
	PerURL     [][]time.Duration // sorted, per webhook (in the job's order)
	Codes      map[int]int
	Elapsed    time.Duration
}

// sendAtRate posts body at rate per second for d, each request in its own
// goroutine (at most 256 in flight; a tick with none free counts as late),
// and waits for the answers.
func sendAtRate(ctx context.Context, s *Sender, body []byte, rate int, d time.Duration) loadOut {
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	var out loadOut
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		<-t.C
		select {
		case sem <- struct{}{}:
			out.Sent++
			wg.Go(func() {
				defer func() { <-sem }()
				_, _ = s.Post(ctx, body)
			})
		default:
			out.Late++
		}
	}
	wg.Wait()
	out.Elapsed = time.Since(start)
	out.Latencies, out.Codes = s.Stats()
	out.PerURL = s.PerURL()
	return out
}

// loadgenMain is the child's main: a loadJob on stdin, a loadOut on stdout.
func loadgenMain(stdin io.Reader, stdout io.Writer) error {
	var job loadJob
	if err := json.NewDecoder(stdin).Decode(&job); err != nil {
		return fmt.Errorf("load job on stdin: %w", err)
	}
	if job.Rate <= 0 || len(job.URLs) == 0 {
		return fmt.Errorf("load job: rate %d, %d URLs", job.Rate, len(job.URLs))
	}
	out := sendAtRate(context.Background(), NewSender(job.URLs, job.Token), job.Body, job.Rate, job.For)
	return json.NewEncoder(stdout).Encode(out)
}

// sendFromProcess runs job in a child process (this executable again).
func sendFromProcess(ctx context.Context, job loadJob) (loadOut, error) {
	self, err := os.Executable()
	if err != nil {
		return loadOut{}, err
	}
	in, err := json.Marshal(job)
	if err != nil {
		return loadOut{}, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), loadgenEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return loadOut{}, fmt.Errorf("load sender process: %w: %s", err, stderr.String())
	}
	var out loadOut
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return loadOut{}, fmt.Errorf("load sender's result: %w (stderr: %s)", err, stderr.String())
	}
	return out, nil
}

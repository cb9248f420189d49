package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/internal/handlers"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

const demoToken = "demo-webhook-token"

func run(ctx context.Context, o options) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	out := o.Out
	step := func(n int, format string, a ...any) {
		fmt.Fprintf(out, "\n[%d/6 %5.1fs] %s\n", n, time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	recv, err := filepath.Abs(o.Receiver)
	if err != nil {
		return err
	}
	if _, err := os.Stat(recv); err != nil {
		return fmt.Errorf("receiver binary %s not found: run `make build` (or `make demo`, which builds it)", o.Receiver)
	}
	dir, err := os.MkdirTemp("", "node-healer-demo-")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "node-healer demo — logs and state in %s\n", dir)

	step(1, "starting redis-server")
	rds, err := testenv.StartRedis(dir)
	if err != nil {
		return err
	}
	defer rds.Stop()
	fmt.Fprintf(out, "      redis at %s\n", rds.Addr)

	step(2, "starting a local control plane (etcd, kube-apiserver, kwok) with %d nodes", o.Nodes)
	var nodes []string
	for i := 1; i <= o.Nodes; i++ {
		nodes = append(nodes, fmt.Sprintf("node-%d", i))
	}
	cl, err := testenv.StartCluster(ctx, dir, testenv.ClusterOptions{Nodes: nodes, Progress: &indent{w: out}})
	if err != nil {
		return fmt.Errorf("control plane: %w (logs in %s)", err, dir)
	}
	defer cl.Stop()
	fmt.Fprintf(out, "      kubeconfig: %s (nodes %s are Ready)\n", cl.Kubeconfig, strings.Join(nodes, ", "))

	step(3, "starting node-healer (%s serve)", o.Receiver)
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfgFile, err := writeConfig(dir, rds.URL(0))
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "receiver.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(recv, "serve", "--config.file="+cfgFile, "--web.listen-address="+fmt.Sprintf("127.0.0.1:%d", port),
		"--kubeconfig="+cl.Kubeconfig, "--replica=demo")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	if err := waitReady(ctx, base); err != nil {
		return fmt.Errorf("receiver not ready: %w (see %s)", err, logFile.Name())
	}
	fmt.Fprintf(out, "      listening on %s; config %s; log %s\n", base, cfgFile, logFile.Name())

	step(4, "Alertmanager → POST %s/webhook: NodeKernelDeadlock on node-1", base)
	at := time.Now().UTC().Truncate(time.Second)
	reply, err := postAlert(ctx, base, "NodeKernelDeadlock", "node-1", at)
	if err != nil {
		return err
	}
	for _, a := range reply.Alerts {
		fmt.Fprintf(out, "      %s: %s (route %s → runbook %s on %s, run %s)\n", a.Fingerprint, a.Reason, a.Route, a.Runbook, a.Node, a.RunID)
	}
	if reply.Accepted != 1 {
		return errors.New("the alert was not accepted")
	}
	runID := reply.Alerts[0].RunID

	step(5, "waiting for run %s", runID)
	run, err := waitRun(ctx, base, runID)
	if err != nil {
		return err
	}
	printRun(out, run)

	step(6, "node-1 as the cluster sees it")
	n, err := cl.Client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "      spec.unschedulable: %v\n", n.Spec.Unschedulable)
	for _, k := range []string{runbooks.AnnotationCordonedBy, runbooks.AnnotationWasUnschedulable} {
		fmt.Fprintf(out, "      annotation %s=%s\n", k, n.Annotations[k])
	}
	evs, err := cl.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=node-1"})
	if err == nil {
		for _, e := range evs.Items {
			fmt.Fprintf(out, "      event %s %s: %s\n", e.Type, e.Reason, e.Message)
		}
	}
	if !n.Spec.Unschedulable {
		return errors.New("node-1 is not cordoned")
	}
	fmt.Fprintf(out, "\nDone in %.1fs: node-1 cordoned by node-healer with an ownership record, an Event and an audit line (%s).\n",
		time.Since(start).Seconds(), logFile.Name())
	if o.Keep {
		fmt.Fprintf(out, "\nStill running (Ctrl-C stops everything):\n  export KUBECONFIG=%s\n  curl -s %s/api/v1/runs | jq .\n  curl -s %s/metrics | grep node_healer_\n  %s runs show --config.file=%s %s\n",
			cl.Kubeconfig, base, base, o.Receiver, cfgFile, runID)
		<-ctx.Done()
	}
	fmt.Fprintln(out, "stopping every process the demo started…")
	return nil
}

// indent prefixes the control plane's progress lines.
type indent struct {
	w   io.Writer
	mid bool // inside a line
}

func (i *indent) Write(p []byte) (int, error) {
	for _, l := range strings.SplitAfter(string(p), "\n") {
		if l == "" {
			continue
		}
		if !i.mid {
			l = "      " + l
		}
		fmt.Fprint(i.w, l)
		i.mid = !strings.HasSuffix(l, "\n")
	}
	return len(p), nil
}

func writeConfig(dir, redisURL string) (string, error) {
	if err := os.WriteFile(filepath.Join(dir, "webhook-token"), []byte(demoToken+"\n"), 0o600); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`# written by the node-healer demo
redis:
  url: %s
webhook:
  auth:
    bearer_token_file: webhook-token
workers:
  count: 2
  claim_after: 30s
locks:
  ttl: 15s
routes:
  - name: kernel-deadlock
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: cordon
  - name: manual-uncordon
    matchers: ['alertname="NodeHealerUncordon"']
    runbook: uncordon
`, redisURL)
	p := filepath.Join(dir, "node-healer.yml")
	return p, os.WriteFile(p, []byte(cfg), 0o600)
}

func waitReady(ctx context.Context, base string) error {
	var last error
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func postAlert(ctx context.Context, base, alertname, node string, at time.Time) (*handlers.Reply, error) {
	payload := map[string]any{
		"version": "4", "groupKey": `{}:{alertname="` + alertname + `"}`, "status": "firing", "receiver": "node-healer",
		"groupLabels": map[string]string{"alertname": alertname}, "externalURL": "http://alertmanager.demo:9093",
		"alerts": []map[string]any{{
			"status":      "firing",
			"labels":      map[string]string{"alertname": alertname, "node": node, "severity": "critical"},
			"annotations": map[string]string{"summary": "kernel: INFO: task docker:1123 blocked for more than 120 seconds."},
			"startsAt":    at, "endsAt": time.Time{}, "fingerprint": fmt.Sprintf("%016x", at.UnixNano()),
		}},
	}
	b, _ := json.Marshal(payload)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhook", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+demoToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("webhook answered %d: %s", resp.StatusCode, body)
	}
	r := &handlers.Reply{}
	return r, json.Unmarshal(body, r)
}

func waitRun(ctx context.Context, base, id string) (*runbooks.Run, error) {
	seen := 0
	for {
		resp, err := http.Get(base + "/api/v1/runs/" + id)
		if err == nil {
			r := &runbooks.Run{}
			ok := resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(r) == nil
			resp.Body.Close()
			if ok {
				for ; seen < len(r.Timeline); seen++ {
					if r.Timeline[seen].Outcome != runbooks.OutcomeStarted {
						fmt.Printf("      step %s: %s\n", r.Timeline[seen].Step, r.Timeline[seen].Outcome)
					}
				}
				if r.Status.Final() {
					return r, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("run %s did not finish: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func printRun(out io.Writer, r *runbooks.Run) {
	fmt.Fprintf(out, "      run %s: runbook %s on %s — %s\n", r.ID, r.Runbook, r.Node, r.Status)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "      STEP\tSTART\tTOOK\tOUTCOME\tDETAIL")
	for _, e := range r.Timeline {
		fmt.Fprintf(tw, "      %s\t%s\t%s\t%s\t%s\n", e.Step, e.Start.Format("15:04:05.000"), e.End.Sub(e.Start).Round(time.Millisecond), e.Outcome, e.Detail)
	}
	_ = tw.Flush()
}

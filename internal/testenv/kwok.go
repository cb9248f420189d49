package testenv

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KwokNodeLabel (with value KwokNodeValue) marks the nodes kwok manages:
// it keeps them Ready, renews their Leases, runs the pods bound to them and
// removes their deleted pods. A node without it has no "kubelet".
const (
	KwokNodeLabel = "kwok.x-k8s.io/node"
	KwokNodeValue = "fake"
)

// kwokStages are the stage files, from the kwok module's kustomize/stage
// folder, that kwok plays: fast node start-up, node heartbeats with
// Leases, pods that become Ready at once, complete, and go when deleted.
var kwokStages = []string{
	"node/fast/node-initialize.yaml",
	"node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"pod/fast/pod-ready.yaml",
	"pod/fast/pod-complete.yaml",
	"pod/fast/pod-delete.yaml",
}

const kwokTimeout = 30 * time.Second

// StartKwok starts kwok (after StopKwok). Node Leases left by a previous
// kwok are deleted first: each kwok process has its own identity and would
// otherwise wait for the old Leases to expire (40 s) before managing nodes.
func (c *Cluster) StartKwok(ctx context.Context) error {
	c.kwokMu.Lock()
	defer c.kwokMu.Unlock()
	if c.kwok != nil && !c.kwok.exited() {
		return nil
	}
	if c.kwokConf == "" {
		conf, err := writeKwokStages(c.Dir, c.kwokBin)
		if err != nil {
			return err
		}
		c.kwokConf = conf
	}
	err := c.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).
		DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("delete old node leases: %w", err)
	}
	for range startAttempts {
		var port int
		if port, err = FreePort(); err != nil {
			return err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		var p *proc
		p, err = startProc("kwok", c.kwokBin, []string{
			"--kubeconfig", c.Kubeconfig,
			"--manage-nodes-with-label-selector", KwokNodeLabel + "=" + KwokNodeValue,
			"--server-address", addr, // only for /healthz
			// Pod IPs; kwok's default, 10.0.0.0/24, is the service range.
			"--cidr", "10.244.0.0/16",
			// Renew node Leases like a kubelet (renewal every 10 s). Without
			// a KwokConfiguration document the default is 0: no Leases.
			"--node-lease-duration-seconds", "40",
			"-c", c.kwokConf,
		}, filepath.Join(c.Dir, "kwok.log"))
		if err != nil {
			return err
		}
		c.kwok = p
		hc := &http.Client{}
		err = p.waitUntil(ctx, kwokTimeout, func(ctx context.Context) error {
			return httpOK(ctx, hc, "http://"+addr+"/healthz", "", "")
		})
		if err == nil {
			return nil
		}
		p.stop(stopGrace)
		c.kwok = nil
		if !strings.Contains(tailFile(p.log, 25), "address already in use") {
			return err
		}
	}
	return err
}

// StopKwok stops kwok: every node loses its "kubelet" at once (Leases are
// no longer renewed, pods no longer change). Node conditions do not change
// by themselves, because no node lifecycle controller runs; use
// SetNodeNotReady for one node that goes NotReady.
func (c *Cluster) StopKwok() {
	c.kwokMu.Lock()
	defer c.kwokMu.Unlock()
	c.kwok.stop(stopGrace)
	c.kwok = nil
}

var (
	stagesMu    sync.Mutex
	stagesCache = map[string][]byte{} // kwok version → joined stage files
)

// writeKwokStages writes the stage files of the kwok module version the
// binary was built from, joined with "---", to dir/kwok-stages.yaml.
func writeKwokStages(dir, kwokBin string) (string, error) {
	info, err := buildinfo.ReadFile(kwokBin)
	if err != nil {
		return "", fmt.Errorf("read build info of %s: %w", kwokBin, err)
	}
	version := info.Main.Version
	if info.Main.Path != "sigs.k8s.io/kwok" || !strings.HasPrefix(version, "v") {
		return "", fmt.Errorf("%s was not built by `go install sigs.k8s.io/kwok/cmd/kwok@VERSION` (main module %s %s)",
			kwokBin, info.Main.Path, version)
	}
	stagesMu.Lock()
	data, ok := stagesCache[version]
	stagesMu.Unlock()
	if !ok {
		modDir, err := moduleDir("sigs.k8s.io/kwok@"+version, dir)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		for i, s := range kwokStages {
			b, err := os.ReadFile(filepath.Join(modDir, "kustomize", "stage", filepath.FromSlash(s)))
			if err != nil {
				return "", fmt.Errorf("kwok stage file: %w", err)
			}
			if i > 0 {
				buf.WriteString("\n---\n")
			}
			buf.Write(bytes.TrimSpace(b))
		}
		buf.WriteString("\n---\n")
		buf.WriteString(execStage)
		data = buf.Bytes()
		stagesMu.Lock()
		stagesCache[version] = data
		stagesMu.Unlock()
	}
	path := filepath.Join(dir, "kwok-stages.yaml")
	return path, os.WriteFile(path, data, 0o644)
}

// moduleDir returns the module cache folder of module@version, downloading
// it through the module proxy if needed (it is already there when kwok was
// built on this machine).
func moduleDir(modVersion, workDir string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", modVersion)
	cmd.Dir = workDir // outside any module
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	_ = json.Unmarshal(out, &m)
	if err != nil || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %v %s %s", modVersion, err, m.Error, strings.TrimSpace(stderr.String()))
	}
	return m.Dir, nil
}

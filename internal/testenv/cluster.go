package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Nodes are created (kwok-managed) at start; StartCluster returns once
	// each is Ready.
	Nodes []string
	// Progress, if set, receives one line per start-up phase, e.g.
	// "starting etcd… ok (1.2s)".
	Progress io.Writer
}

// Cluster is a private Kubernetes control plane: etcd, kube-apiserver and
// kwok playing the kubelet of every node that carries KwokNodeLabel. There
// is no scheduler and no controller-manager: bind pods with spec.nodeName
// and create "controller-owned" pods yourself (CreateReplicaSetPods).
type Cluster struct {
	// Dir holds the data, certificates, kubeconfig and one log per process
	// (etcd.log, kube-apiserver.log, kwok.log).
	Dir string
	// Host is the apiserver's URL (https://127.0.0.1:PORT).
	Host string
	// Kubeconfig is the path of an admin kubeconfig (system:masters).
	Kubeconfig string
	// RESTConfig is the admin config. Its QPS/Burst are raised (100/200)
	// so tests are not throttled; set your own on a copy
	// (rest.CopyConfig) to model a default client.
	RESTConfig *rest.Config
	// Client is a clientset built from RESTConfig.
	Client kubernetes.Interface

	etcd, apiserver *proc
	progress        io.Writer

	kwokMu   sync.Mutex
	kwok     *proc
	kwokBin  string
	kwokConf string
}

// Timeouts for each phase of start-up (generous: a loaded 2-core machine).
const (
	etcdTimeout      = 30 * time.Second
	apiserverTimeout = 90 * time.Second
	stopGrace        = 10 * time.Second
)

// StartCluster starts etcd, kube-apiserver and kwok with their data and
// logs in dir (which must exist), on free loopback ports, and creates
// opts.Nodes. ctx bounds start-up only; the processes run until Stop. On
// error, everything already started is stopped; the error carries the tail
// of the failing process's log.
func StartCluster(ctx context.Context, dir string, opts ClusterOptions) (_ *Cluster, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, progress: opts.Progress}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	var etcdBin, apiBin string
	if err := c.phase("finding tools (etcd, kube-apiserver, kwok)", func() (err error) {
		if etcdBin, err = ToolPath("etcd"); err != nil {
			return err
		}
		if apiBin, err = ToolPath("kube-apiserver"); err != nil {
			return err
		}
		c.kwokBin, err = ToolPath("kwok")
		return err
	}); err != nil {
		return nil, err
	}

	var etcdURL string
	if err := c.phase("starting etcd", func() (err error) {
		etcdURL, err = c.startEtcd(ctx, etcdBin)
		return err
	}); err != nil {
		return nil, err
	}
	if err := c.phase("starting kube-apiserver", func() error { return c.startAPIServer(ctx, apiBin, etcdURL) }); err != nil {
		return nil, err
	}
	if err := c.phase("creating default ServiceAccount", func() error { return c.createDefaultServiceAccount(ctx) }); err != nil {
		return nil, err
	}
	if err := c.phase("starting kwok", func() error { return c.StartKwok(ctx) }); err != nil {
		return nil, err
	}
	if len(opts.Nodes) > 0 {
		if err := c.phase(fmt.Sprintf("creating %d kwok nodes", len(opts.Nodes)), func() error {
			return c.CreateNodes(ctx, opts.Nodes...)
		}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// phase runs f, printing "what… ok (1.2s)" or "what… FAILED" to Progress.
func (c *Cluster) phase(what string, f func() error) error {
	start := time.Now()
	if c.progress != nil {
		fmt.Fprintf(c.progress, "%s… ", what)
	}
	err := f()
	if c.progress != nil {
		if err != nil {
			fmt.Fprintln(c.progress, "FAILED")
		} else {
			fmt.Fprintf(c.progress, "ok (%.1fs)\n", time.Since(start).Seconds())
		}
	}
	return err
}

// startAttempts retries a process start when its port was taken between
// FreePort and the bind (other test packages start clusters in parallel).
const startAttempts = 3

func (c *Cluster) startEtcd(ctx context.Context, bin string) (string, error) {
	var err error
	for range startAttempts {
		var clientPort, peerPort int
		if clientPort, err = FreePort(); err != nil {
			return "", err
		}
		if peerPort, err = FreePort(); err != nil {
			return "", err
		}
		clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
		peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
		dataDir := filepath.Join(c.Dir, "etcd")
		if err = os.RemoveAll(dataDir); err != nil {
			return "", err
		}
		var p *proc
		p, err = startProc("etcd", bin, []string{
			"--name", "default",
			"--data-dir", dataDir,
			"--listen-client-urls", clientURL,
			"--advertise-client-urls", clientURL,
			"--listen-peer-urls", peerURL,
			"--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", "default=" + peerURL,
			"--unsafe-no-fsync",
		}, filepath.Join(c.Dir, "etcd.log"))
		if err != nil {
			return "", err
		}
		c.etcd = p
		hc := &http.Client{}
		err = p.waitUntil(ctx, etcdTimeout, func(ctx context.Context) error {
			return httpOK(ctx, hc, clientURL+"/health", "", `"health":"true"`)
		})
		if err == nil {
			return clientURL, nil
		}
		p.stop(stopGrace)
		c.etcd = nil
		if !strings.Contains(tailFile(p.log, 25), "address already in use") {
			return "", err
		}
	}
	return "", err
}

func (c *Cluster) startAPIServer(ctx context.Context, bin, etcdURL string) error {
	pki := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	saKey := filepath.Join(pki, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return err
	}
	token, err := randomToken()
	if err != nil {
		return err
	}
	tokens := filepath.Join(pki, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for range startAttempts {
		var port int
		if port, err = FreePort(); err != nil {
			return err
		}
		host := "https://127.0.0.1:" + strconv.Itoa(port)
		var p *proc
		p, err = startProc("kube-apiserver", bin, []string{
			"--etcd-servers", etcdURL,
			"--cert-dir", pki,
			"--secure-port", strconv.Itoa(port),
			"--bind-address", "127.0.0.1",
			"--advertise-address", "127.0.0.1",
			"--service-account-issuer", "https://kubernetes.default.svc",
			"--service-account-key-file", saKey,
			"--service-account-signing-key-file", saKey,
			"--token-auth-file", tokens,
			"--authorization-mode", "RBAC",
			"--service-cluster-ip-range", "10.0.0.0/24",
			// No controller-manager creates service accounts or their
			// tokens, so the ServiceAccount admission plugin would reject
			// pods in any namespace without a "default" account.
			"--disable-admission-plugins", "ServiceAccount",
			"--allow-privileged=true",
			// The endpoint reconciler rejects a loopback advertise address
			// ("may not be in the loopback range") and logs it every 10 s.
			"--endpoint-reconciler-type", "none",
		}, filepath.Join(c.Dir, "kube-apiserver.log"))
		if err != nil {
			return err
		}
		c.apiserver = p
		err = p.waitUntil(ctx, apiserverTimeout, func(ctx context.Context) error {
			return httpOK(ctx, insecure, host+"/readyz", token, "")
		})
		if err == nil {
			c.Host = host
			return c.writeClientConfig(token)
		}
		p.stop(stopGrace)
		c.apiserver = nil
		if !strings.Contains(tailFile(p.log, 25), "address already in use") {
			return err
		}
	}
	return err
}

// writeClientConfig builds RESTConfig, Client and the kubeconfig file. The
// CA is the one kube-apiserver generated in --cert-dir (apiserver.crt holds
// the serving certificate followed by its self-signed CA).
func (c *Cluster) writeClientConfig(token string) error {
	caData, err := os.ReadFile(filepath.Join(c.Dir, "pki", "apiserver.crt"))
	if err != nil {
		return fmt.Errorf("read the apiserver's generated certificate: %w", err)
	}
	c.RESTConfig = &rest.Config{
		Host:            c.Host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caData},
		QPS:             100,
		Burst:           200,
	}
	if c.Client, err = kubernetes.NewForConfig(c.RESTConfig); err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["testenv"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: caData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "testenv"
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return clientcmd.WriteToFile(*kc, c.Kubeconfig)
}

// createDefaultServiceAccount does the controller-manager's job for the
// default namespace, which kube-apiserver creates shortly after /readyz.
func (c *Cluster) createDefaultServiceAccount(ctx context.Context) error {
	return c.apiserver.waitUntil(ctx, 30*time.Second, func(ctx context.Context) error {
		return ensureServiceAccount(ctx, c.Client, metav1.NamespaceDefault)
	})
}

func ensureServiceAccount(ctx context.Context, cs kubernetes.Interface, ns string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
	_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// Stop stops kwok, kube-apiserver and etcd (SIGTERM, then SIGKILL after a
// grace period) and returns once all have exited. Safe to call twice.
func (c *Cluster) Stop() {
	c.StopKwok()
	c.apiserver.stop(stopGrace)
	c.etcd.stop(stopGrace)
}

func httpOK(ctx context.Context, hc *http.Client, url, token, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if want != "" && !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %q lacks %q", url, body, want)
	}
	return nil
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), 0o600)
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

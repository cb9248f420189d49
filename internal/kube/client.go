// Package kube is node-healer's client-go side: building the client
// (KUBECONFIG, --kubeconfig or in-cluster, as client-go users expect), the
// runbooks.NodeOps adapter, and an informer-backed node cache the webhook
// uses to reject alerts for nodes that are not in the cluster.
package kube

import (
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config builds a rest.Config: an explicit kubeconfig path, else
// $KUBECONFIG, else in-cluster, else ~/.kube/config.
func Config(kubeconfig string, qps float32, burst int) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	case os.Getenv("KUBECONFIG") != "":
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	default:
		cfg, err = rest.InClusterConfig()
		if err == rest.ErrNotInCluster {
			cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
				clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config (set --kubeconfig or KUBECONFIG, or run in a cluster): %w", err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = "node-healer"
	return cfg, nil
}

// NewClient builds a clientset from a rest.Config.
func NewClient(cfg *rest.Config) (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(cfg)
}

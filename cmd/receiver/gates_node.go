package main

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/safety"
)

// nodeChecks builds the blocking_pods and hands_off gates. The global
// section always gets a hands-off check: the default marks (unless
// hands_off.no_defaults) and the cancel of a node being deleted; a
// route's section adds its own marks.
func (e gateEnv) nodeChecks(g *config.Gates) ([]safety.Check, error) {
	var out []safety.Check
	if b := g.BlockingPods; b != nil {
		if e.client == nil {
			return nil, fmt.Errorf("gates.blocking_pods: no Kubernetes client")
		}
		scope := b.Scope
		if scope == "" {
			scope = safety.ScopeNode
		}
		pods := startPodCache(e.ctx, e.client, b.LabelSelector, b.Namespaces)
		out = append(out, &safety.BlockingPods{Pods: pods, Selector: b.LabelSelector, Scope: scope})
		e.log.Info("blocking-pods gate", "selector", b.LabelSelector, "namespaces", b.Namespaces, "scope", scope)
	}
	global := g == e.cfg.Gates
	var marks []safety.Mark
	if global && (g.HandsOff == nil || !g.HandsOff.NoDefaults) {
		marks = safety.DefaultMarks()
	}
	if h := g.HandsOff; h != nil {
		for _, l := range []struct {
			kind    string
			entries []string
		}{{safety.MarkTaint, h.Taints}, {safety.MarkLabel, h.Labels}, {safety.MarkAnnotation, h.Annotations}} {
			for _, s := range l.entries {
				marks = append(marks, safety.ParseMark(l.kind, s))
			}
		}
	}
	if global || len(marks) > 0 {
		out = append(out, &safety.HandsOff{Marks: marks})
	}
	return out, nil
}

// podCache serves a blocking_pods gate from pod informers filtered by its
// label selector (server side: only matching pods are listed and
// watched), one per namespace, or one for all namespaces.
type podCache struct {
	listers []listerv1.PodLister
	synced  []cache.InformerSynced
}

// startPodCache starts the informers; they run until ctx ends.
func startPodCache(ctx context.Context, client kubernetes.Interface, selector string, namespaces []string) *podCache {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	c := &podCache{}
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
		inf := f.Core().V1().Pods()
		c.listers = append(c.listers, inf.Lister())
		c.synced = append(c.synced, inf.Informer().HasSynced)
		f.Start(ctx.Done())
	}
	return c
}

// Pods implements safety.PodSource.
func (c *podCache) Pods() ([]safety.Pod, error) {
	for _, s := range c.synced {
		if !s() {
			return nil, safety.ErrPodsNotSynced
		}
	}
	var out []safety.Pod
	for _, l := range c.listers {
		pods, err := l.List(labels.Everything())
		if err != nil {
			return nil, err
		}
		for _, p := range pods {
			out = append(out, safety.Pod{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName,
				Done: p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed})
		}
	}
	return out, nil
}

// Package deploy holds node-healer's Kubernetes manifests (kustomize). Its
// tests render them (render_test.go), check them against node-healer's own
// config validator and rules, and load them into a real kube-apiserver:
// every object must pass a server-side dry run with strict field
// validation, and the RBAC must allow exactly the calls node-healer makes
// (SubjectAccessReviews as its ServiceAccount).
package deploy

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/node-healer/node-healer/internal/testenv"
)

// cluster is the shared etcd + kube-apiserver + kwok (nil under -short).
var cluster *testenv.Cluster

// testNode is a kwok node for TestCodeUnderRBAC.
const testNode = "deploy-n1"

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWithCluster(m, testenv.ClusterOptions{Nodes: []string{testNode}}, &cluster))
}

func contextTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

func needCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs kube-apiserver (runs without -short)")
	}
}

// apiClient applies unstructured objects through the dynamic client, with a
// discovery-backed REST mapper that can be refreshed after CRDs appear.
type apiClient struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newAPIClient(t *testing.T) *apiClient {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cluster.Client.Discovery()))}
}

// resource maps an object to its endpoint, refreshing discovery for up to
// 30 s (a CRD's API appears in discovery shortly after it is Established).
func (c *apiClient) resource(ctx context.Context, o object) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	var m *meta.RESTMapping
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var err error
		m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			c.mapper.Reset()
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("no API for %s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			return nil, fmt.Errorf("namespaced %s has no metadata.namespace (the manifests set it explicitly; there is no kustomize namespace transformer)", gvk.Kind)
		}
		return c.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	if o.GetNamespace() != "" {
		return nil, fmt.Errorf("cluster-scoped %s has metadata.namespace %q", gvk.Kind, o.GetNamespace())
	}
	return c.dyn.Resource(m.Resource), nil
}

// apply creates the object, or updates it if it exists. dryRun sends
// dryRun=All: the API server runs admission and validation and stores
// nothing. Field validation is Strict: unknown or duplicate fields fail.
func (c *apiClient) apply(ctx context.Context, o object, dryRun bool) error {
	ri, err := c.resource(ctx, o)
	if err != nil {
		return err
	}
	var dr []string
	if dryRun {
		dr = []string{metav1.DryRunAll}
	}
	obj := o.DeepCopy()
	_, err = ri.Create(ctx, obj, metav1.CreateOptions{DryRun: dr, FieldValidation: metav1.FieldValidationStrict})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	_, err = ri.Update(ctx, obj, metav1.UpdateOptions{DryRun: dr, FieldValidation: metav1.FieldValidationStrict})
	return err
}

// setUp creates, for real, what the rendered objects need before they can
// be dry-run: the Prometheus Operator CRDs and the Namespace objects.
func setUp(t *testing.T, c *apiClient, r *rendering) {
	t.Helper()
	ctx := t.Context()
	crds, err := readCRDs()
	if err != nil {
		t.Fatal(err)
	}
	crdRes := c.dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, crd := range crds {
		if err := c.apply(ctx, crd, false); err != nil {
			t.Fatalf("create %s: %v", crd, err)
		}
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := crdRes.Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, cond := range conds {
				m, _ := cond.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("CRD %s not Established: %v", crd.GetName(), err)
		}
	}
	c.mapper.Reset()
	for _, ns := range r.ofKind("Namespace") {
		if err := c.apply(ctx, ns, false); err != nil {
			t.Fatalf("create %s: %v", ns, err)
		}
	}
}

// TestManifestsAcceptedByAPIServer: every rendered object (generators
// included) passes a server-side dry run: schema, strict field validation,
// admission (Pod Security on the namespace included).
func TestManifestsAcceptedByAPIServer(t *testing.T) {
	needCluster(t)
	r := renderT(t)
	if len(r.MissingSecrets) > 0 {
		t.Logf("secret files not present (placeholders used, as expected in a checkout): %s", strings.Join(r.MissingSecrets, ", "))
	}
	c := newAPIClient(t)
	setUp(t, c, r)
	kinds := map[string]int{}
	for _, o := range r.Objects {
		kinds[o.GetKind()]++
		if o.GetKind() == "Namespace" {
			continue // created for real by setUp
		}
		if err := c.apply(t.Context(), o, true); err != nil {
			t.Errorf("%s: rejected by kube-apiserver: %v", o, err)
		}
	}
	// The parts the issue asks for are all there.
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
		"ConfigMap", "Secret", "Deployment", "PodDisruptionBudget", "Service", "ServiceMonitor", "StatefulSet",
		"DaemonSet", "PrometheusRule", "PodMonitor", "NetworkPolicy"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in the rendered manifests", k)
		}
	}
	t.Logf("%d objects accepted: %v", len(r.Objects), kinds)
}

// access is one API request for a SubjectAccessReview.
type access struct {
	verb, group, resource, sub, ns string
	path                           string // non-resource URL instead of a resource
	why                            string
}

func (a access) String() string {
	if a.path != "" {
		return a.verb + " " + a.path
	}
	r := a.resource
	if a.sub != "" {
		r += "/" + a.sub
	}
	if a.group != "" {
		r += "." + a.group
	}
	where := "cluster-wide"
	if a.ns != "" {
		where = "in " + a.ns
	}
	return fmt.Sprintf("%s %s %s", a.verb, r, where)
}

const (
	receiverSA = "system:serviceaccount:node-healer:node-healer"
	npdSA      = "system:serviceaccount:node-healer-exec:node-problem-detector"
)

// receiverAllowed: every call node-healer makes (grep internal/kube and
// cmd/receiver for the client calls). Keep in step with receiver/rbac.yaml
// and the table in README.md; TestCodeUnderRBAC runs the code itself.
var receiverAllowed = []access{
	{verb: "list", resource: "nodes", why: "node informer (webhook node check)"},
	{verb: "watch", resource: "nodes", why: "node informer"},
	{verb: "get", resource: "nodes", why: "runbooks read the node (resourceVersion, conditions, annotations)"},
	{verb: "patch", resource: "nodes", why: "cordon/uncordon, annotations, taints"},
	{verb: "create", group: "events.k8s.io", resource: "events", ns: "default", why: "Events on Nodes (internal/kube/events.go)"},
	{verb: "patch", group: "events.k8s.io", resource: "events", ns: "default", why: "a repeated Event's series count (client-go tools/events)"},
	{verb: "list", group: "events.k8s.io", resource: "events", ns: "default", why: "the operator page shows a node's Events (cmd/receiver/ui.go)"},
	{verb: "get", path: "/readyz", why: "readiness check of the API server"},
	{verb: "list", resource: "pods", why: "drain: the node's pods, all namespaces"},
	{verb: "watch", resource: "pods", why: "drain: wait for evicted pods to go"},
	{verb: "create", resource: "pods", sub: "eviction", ns: "default", why: "drain: Eviction API"},
	{verb: "create", resource: "pods", sub: "eviction", ns: "kube-system", why: "drain: Eviction API, any namespace"},
	{verb: "get", resource: "persistentvolumeclaims", ns: "default", why: "drain: local volumes last"},
	{verb: "get", resource: "persistentvolumes", why: "drain: local volumes last"},
	{verb: "get", group: "coordination.k8s.io", resource: "leases", ns: "kube-node-lease", why: "node responsiveness (kubelet Lease)"},
	{verb: "list", group: "coordination.k8s.io", resource: "leases", ns: "kube-node-lease", why: "Lease watches: the waits read the kubelet Lease of the node they wait on from a watch of it (field-selected list)"},
	{verb: "watch", group: "coordination.k8s.io", resource: "leases", ns: "kube-node-lease", why: "Lease watches"},
	{verb: "create", resource: "pods", ns: "node-healer-exec", why: "node-exec pods"},
	{verb: "get", resource: "pods", ns: "node-healer-exec", why: "node-exec pods"},
	{verb: "watch", resource: "pods", ns: "node-healer-exec", why: "node-exec pods"},
	{verb: "delete", resource: "pods", ns: "node-healer-exec", why: "node-exec pods"},
}

// receiverDenied: calls node-healer must never be able to make.
var receiverDenied = []access{
	{verb: "delete", resource: "nodes", why: "never deletes nodes"},
	{verb: "create", resource: "nodes"},
	{verb: "update", resource: "nodes", why: "patch only, with a resourceVersion precondition"},
	{verb: "update", resource: "nodes", sub: "status", why: "node conditions belong to kubelet/NPD"},
	{verb: "patch", resource: "nodes", sub: "status"},
	{verb: "list", resource: "secrets", why: "secrets come from mounted files"},
	{verb: "get", resource: "secrets", ns: "kube-system"},
	{verb: "get", resource: "secrets", ns: "node-healer", why: "not even its own"},
	{verb: "watch", resource: "secrets"},
	{verb: "create", resource: "pods", ns: "default", why: "node-exec pods only in their namespace"},
	{verb: "create", resource: "pods", ns: "node-healer", why: "no privileged pods beside the receiver (restricted namespace)"},
	{verb: "create", resource: "pods", ns: "kube-system"},
	{verb: "delete", resource: "pods", ns: "default", why: "eviction only"},
	{verb: "delete", resource: "pods", why: "eviction only"},
	{verb: "deletecollection", resource: "pods", ns: "node-healer-exec"},
	{verb: "update", resource: "pods", ns: "node-healer-exec"},
	{verb: "create", resource: "pods", sub: "exec", ns: "default"},
	{verb: "create", resource: "pods", sub: "exec", ns: "node-healer-exec"},
	{verb: "create", group: "events.k8s.io", resource: "events", ns: "kube-system", why: "events only on Nodes, in default"},
	{verb: "create", resource: "events", ns: "default", why: "core/v1 events: nothing writes them any more (events.k8s.io only)"},
	{verb: "patch", resource: "events", ns: "default"},
	{verb: "update", group: "events.k8s.io", resource: "events", ns: "default", why: "create and patch only"},
	{verb: "delete", group: "events.k8s.io", resource: "events", ns: "default", why: "cannot erase the record"},
	{verb: "deletecollection", group: "events.k8s.io", resource: "events", ns: "default"},
	{verb: "watch", group: "events.k8s.io", resource: "events", ns: "default", why: "the operator page lists, it does not watch"},
	{verb: "list", group: "events.k8s.io", resource: "events", ns: "kube-system", why: "Events on Nodes only, in default"},
	{verb: "update", group: "coordination.k8s.io", resource: "leases", ns: "kube-node-lease", why: "must not fake a kubelet heartbeat"},
	{verb: "get", group: "coordination.k8s.io", resource: "leases", ns: "kube-system", why: "leader-election Leases are not its business"},
	{verb: "list", group: "coordination.k8s.io", resource: "leases", ns: "kube-system", why: "the Lease watches are namespaced to kube-node-lease"},
	{verb: "create", group: "coordination.k8s.io", resource: "leases", ns: "kube-node-lease"},
	{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
	{verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings", ns: "node-healer"},
	{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
	{verb: "bind", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
	{verb: "update", group: "rbac.authorization.k8s.io", resource: "roles", ns: "node-healer"},
	{verb: "impersonate", resource: "serviceaccounts"},
	{verb: "create", resource: "serviceaccounts", sub: "token", ns: "node-healer"},
	{verb: "update", resource: "configmaps", ns: "node-healer", why: "cannot rewrite its own config"},
	{verb: "update", group: "apps", resource: "deployments", ns: "node-healer"},
	{verb: "delete", group: "policy", resource: "poddisruptionbudgets", ns: "default"},
	{verb: "update", group: "apps", resource: "daemonsets", ns: "kube-system"},
	{verb: "create", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"},
}

var npdAllowed = []access{
	{verb: "get", resource: "nodes", why: "NPD reads its node"},
	{verb: "patch", resource: "nodes", sub: "status", why: "NPD sets node conditions"},
	{verb: "create", resource: "events", ns: "default", why: "NPD events on nodes"},
}

var npdDenied = []access{
	{verb: "delete", resource: "nodes"},
	{verb: "patch", resource: "nodes", why: "cannot cordon"},
	{verb: "list", resource: "secrets"},
	{verb: "create", resource: "pods", ns: "node-healer"},
}

// TestRBAC applies the RBAC for real and asks the API server, as each
// ServiceAccount, whether every call is allowed or denied.
func TestRBAC(t *testing.T) {
	needCluster(t)
	r := renderT(t)
	c := newAPIClient(t)
	setUp(t, c, r)
	for _, o := range r.ofKind("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding") {
		if err := c.apply(t.Context(), o, false); err != nil {
			t.Fatalf("apply %s: %v", o, err)
		}
	}
	check := func(t *testing.T, user string, allowed, denied []access) {
		// The RBAC authorizer reads roles from an informer: wait (briefly)
		// for each allowed call, then the denials are not stale caches.
		for _, a := range allowed {
			var last *authorizationv1.SubjectAccessReviewStatus
			var lastErr error
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				last, lastErr = review(t.Context(), user, a)
				if lastErr == nil && last.Allowed {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			switch {
			case lastErr != nil:
				t.Errorf("%s: %v", a, lastErr)
			case !last.Allowed:
				t.Errorf("%s should be allowed (%s), but is denied: %q %s", a, a.why, last.Reason, last.EvaluationError)
			}
		}
		for _, a := range denied {
			s, err := review(t.Context(), user, a)
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			if s.Allowed {
				t.Errorf("%s must be denied (%s), but is allowed: %s", a, a.why, s.Reason)
			}
		}
	}
	t.Run("receiver", func(t *testing.T) { check(t, receiverSA, receiverAllowed, receiverDenied) })
	t.Run("node-problem-detector", func(t *testing.T) { check(t, npdSA, npdAllowed, npdDenied) })
}

// review asks whether user (with the groups every ServiceAccount token
// carries) may make the call.
func review(ctx context.Context, user string, a access) (*authorizationv1.SubjectAccessReviewStatus, error) {
	parts := strings.Split(user, ":") // system:serviceaccount:NS:NAME
	spec := authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + parts[2], "system:authenticated"},
	}
	if a.path != "" {
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: a.path, Verb: a.verb}
	} else {
		spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
			Namespace: a.ns, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub,
		}
	}
	got, err := cluster.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx,
		&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return &got.Status, nil
}

// Minimal Prometheus Operator CRDs: a bare kube-apiserver has none, and the
// operator's real CRDs are megabytes of schema. PrometheusRule gets the
// structure of a rule file (so strict validation catches a misspelt or
// misplaced field in the generated spec); the monitors keep their spec
// open, with the fields these manifests rely on required.
const promCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: prometheusrules, singular: prometheusrule, kind: PrometheusRule, listKind: PrometheusRuleList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              required: [groups]
              properties:
                groups:
                  type: array
                  items:
                    type: object
                    required: [name, rules]
                    properties:
                      name: {type: string}
                      interval: {type: string}
                      limit: {type: integer}
                      rules:
                        type: array
                        items:
                          type: object
                          required: [expr]
                          properties:
                            alert: {type: string}
                            record: {type: string}
                            expr: {x-kubernetes-int-or-string: true}
                            for: {type: string}
                            keep_firing_for: {type: string}
                            labels: {type: object, additionalProperties: {type: string}}
                            annotations: {type: object, additionalProperties: {type: string}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: servicemonitors, singular: servicemonitor, kind: ServiceMonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              required: [selector, endpoints]
              x-kubernetes-preserve-unknown-fields: true
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: podmonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: podmonitors, singular: podmonitor, kind: PodMonitor, listKind: PodMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              required: [selector, podMetricsEndpoints]
              x-kubernetes-preserve-unknown-fields: true
`

func readCRDs() ([]object, error) {
	return parseManifests(strings.NewReader(promCRDs), "deploy_test.go (minimal CRD)")
}

// TestPodSecurity: every workload's pod, dry-run created as a Pod in its
// namespace, passes that namespace's Pod Security admission — the receiver
// and Redis under "restricted" in node-healer, node-problem-detector under
// "privileged" in node-healer-exec — and the same privileged pod is refused
// in the receiver's namespace.
func TestPodSecurity(t *testing.T) {
	needCluster(t)
	r := renderT(t)
	c := newAPIClient(t)
	setUp(t, c, r)
	podRes := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	create := func(ns string, o object, spec map[string]any) error {
		tmpl, _ := spec["template"].(map[string]any)
		podSpec := runtime.DeepCopyJSONValue(tmpl["spec"]).(map[string]any)
		// A StatefulSet's claims become volumes of its pods.
		claims, _ := spec["volumeClaimTemplates"].([]any)
		for _, cl := range claims {
			name, _, _ := unstructured.NestedString(cl.(map[string]any), "metadata", "name")
			vols, _ := podSpec["volumes"].([]any)
			podSpec["volumes"] = append(vols, map[string]any{"name": name, "emptyDir": map[string]any{}})
		}
		pod := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"generateName": o.GetName() + "-", "namespace": ns},
			"spec":     podSpec,
		}}
		_, err := c.dyn.Resource(podRes).Namespace(ns).Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	checked := 0
	for _, o := range r.ofKind("Deployment", "StatefulSet", "DaemonSet") {
		spec, _ := o.Object["spec"].(map[string]any)
		if err := create(o.GetNamespace(), o, spec); err != nil {
			t.Errorf("%s: its pod is refused in namespace %s: %v", o, o.GetNamespace(), err)
		}
		checked++
		if o.GetName() == "node-problem-detector" {
			err := create("node-healer", o, spec)
			if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
				t.Errorf("a privileged pod in the receiver's namespace: %v, want a PodSecurity refusal", err)
			}
		}
	}
	if checked < 3 {
		t.Errorf("checked %d workloads, want the receiver, Redis and NPD", checked)
	}
}

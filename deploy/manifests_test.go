package deploy

import (
	"bytes"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// These tests need no cluster: they check the rendered manifests against
// each other, against node-healer's own config validator and against the
// rules in ../rules.

// builtinRunbooks are the runbooks this build of node-healer ships; the
// config validator rejects any other name.
func builtinRunbooks(t *testing.T) []string {
	t.Helper()
	reg, err := runbooks.NewRegistry(runbooks.Builtin()...)
	if err != nil {
		t.Fatal(err)
	}
	return reg.Names()
}

const (
	configMountDir = "/etc/node-healer"
	configFileName = "node-healer.yml"
)

func typed[T any](t *testing.T, o object) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, out, true); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	return out
}

func receiverDeployment(t *testing.T, r *rendering) *appsv1.Deployment {
	return typed[appsv1.Deployment](t, r.find(t, "Deployment", "node-healer"))
}

func TestReceiverDeployment(t *testing.T) {
	r := renderT(t)
	d := receiverDeployment(t, r)
	if d.Namespace != "node-healer" {
		t.Errorf("namespace %q, want node-healer", d.Namespace)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("replicas %v, want at least 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "node-healer" {
		t.Errorf("serviceAccountName %q, want node-healer", pod.ServiceAccountName)
	}
	if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Error("selector does not match the pod template's labels")
	}

	// Spread: never two replicas on one node.
	spread := false
	for _, c := range pod.TopologySpreadConstraints {
		if c.TopologyKey == corev1.LabelHostname && c.WhenUnsatisfiable == corev1.DoNotSchedule && c.MaxSkew == 1 {
			sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
			if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("hostname spread constraint does not select the pods: %v", err)
			}
			spread = true
		}
	}
	if !spread {
		t.Error("no hard topologySpreadConstraint on kubernetes.io/hostname (maxSkew 1, DoNotSchedule)")
	}

	// Pod security: non-root, seccomp.
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("pod securityContext must set runAsNonRoot and runAsUser 65532: %+v", psc)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod securityContext: seccompProfile RuntimeDefault")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("container has no securityContext")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container: readOnlyRootFilesystem must be true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container: allowPrivilegeEscalation must be false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Error("container: capabilities must drop ALL and add none")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532:
		t.Error("container: runAsNonRoot, runAsUser 65532")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("container: privileged")
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("container: seccompProfile RuntimeDefault")
	}

	// Probes on the receiver's endpoints, on its port.
	port := containerPort(t, c, "http")
	if port != 9095 {
		t.Errorf("container port http = %d, want 9095", port)
	}
	for name, want := range map[string]struct {
		p    *corev1.Probe
		path string
	}{"liveness": {c.LivenessProbe, "/-/healthy"}, "readiness": {c.ReadinessProbe, "/-/ready"}} {
		if want.p == nil || want.p.HTTPGet == nil {
			t.Errorf("%s probe: want httpGet %s", name, want.path)
			continue
		}
		if want.p.HTTPGet.Path != want.path || resolvePort(t, c, want.p.HTTPGet.Port) != 9095 {
			t.Errorf("%s probe: GET %s on %s, want %s on 9095", name, want.p.HTTPGet.Path, want.p.HTTPGet.Port.String(), want.path)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("resources: requests (cpu, memory) and a memory limit are required")
	}

	// POD_NAME from the downward API names the replica.
	var podName *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "POD_NAME" {
			podName = &c.Env[i]
		}
	}
	if podName == nil || podName.ValueFrom == nil || podName.ValueFrom.FieldRef == nil || podName.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Error("env POD_NAME must come from fieldRef metadata.name")
	}

	// The config file the args name is the one the volume mounts.
	if !slices.Contains(c.Args, "--config.file="+configMountDir+"/"+configFileName) {
		t.Errorf("args %q lack --config.file=%s/%s", c.Args, configMountDir, configFileName)
	}
	if got := mountedFiles(t, pod, c, configMountDir); !slices.Contains(got, configFileName) {
		t.Errorf("%s does not hold %s (mounted: %v)", configMountDir, configFileName, got)
	}
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, name)
	return 0
}

func resolvePort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	return containerPort(t, c, p.StrVal)
}

// mountedFiles lists the file names a projected/configMap/secret volume
// mounted at dir puts there (items only: the manifests always list them).
func mountedFiles(t *testing.T, pod corev1.PodSpec, c corev1.Container, dir string) []string {
	t.Helper()
	var vol string
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir {
			vol = m.Name
		}
	}
	var files []string
	for _, v := range pod.Volumes {
		if v.Name != vol {
			continue
		}
		add := func(items []corev1.KeyToPath) {
			for _, it := range items {
				files = append(files, it.Path)
			}
		}
		switch {
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add(s.ConfigMap.Items)
				}
				if s.Secret != nil {
					add(s.Secret.Items)
				}
			}
		case v.ConfigMap != nil:
			add(v.ConfigMap.Items)
		case v.Secret != nil:
			add(v.Secret.Items)
		}
	}
	return files
}

func TestServiceMonitorAndPDB(t *testing.T) {
	r := renderT(t)
	d := receiverDeployment(t, r)
	podLabels := labels.Set(d.Spec.Template.Labels)

	svc := typed[corev1.Service](t, r.find(t, "Service", "node-healer"))
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Error("Service node-healer does not select the receiver pods")
	}
	var svcPort *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == 9095 {
			svcPort = &svc.Spec.Ports[i]
		}
	}
	if svcPort == nil {
		t.Fatal("Service node-healer has no port 9095")
	}
	if got := resolvePort(t, d.Spec.Template.Spec.Containers[0], svcPort.TargetPort); got != 9095 {
		t.Errorf("Service port 9095 targets container port %d", got)
	}

	pdb := typed[policyv1.PodDisruptionBudget](t, r.find(t, "PodDisruptionBudget", "node-healer"))
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !sel.Matches(podLabels) {
		t.Errorf("PodDisruptionBudget does not select the receiver pods (%v)", err)
	}

	sm := r.find(t, "ServiceMonitor", "node-healer")
	var spec struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port string `json:"port"`
			Path string `json:"path"`
		} `json:"endpoints"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(sm.Object["spec"].(map[string]any), &spec); err != nil {
		t.Fatal(err)
	}
	if sel, err := metav1.LabelSelectorAsSelector(&spec.Selector); err != nil || !sel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor does not select Service node-healer (%v)", err)
	}
	if len(spec.Endpoints) != 1 || spec.Endpoints[0].Port != svcPort.Name || spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want port %q path /metrics", spec.Endpoints, svcPort.Name)
	}
}

// TestReferencesResolve: every ConfigMap, Secret (and key) and
// ServiceAccount a workload references is in the rendered set. The API
// server does not check this; a typo would leave pods ContainerCreating.
func TestReferencesResolve(t *testing.T) {
	r := renderT(t)
	keys := func(kind, ns, name string) (map[string]bool, bool) {
		for _, o := range r.ofKind(kind) {
			if o.GetNamespace() == ns && o.GetName() == name {
				data, _ := o.Object["data"].(map[string]any)
				out := map[string]bool{}
				for k := range data {
					out[k] = true
				}
				return out, true
			}
		}
		return nil, false
	}
	ref := func(o object, kind, name string, items []corev1.KeyToPath, key string) {
		data, ok := keys(kind, o.GetNamespace(), name)
		if !ok {
			t.Errorf("%s references %s %s/%s, which is not in the manifests", o, kind, o.GetNamespace(), name)
			return
		}
		for _, it := range items {
			if !data[it.Key] {
				t.Errorf("%s references key %q of %s %s, which it does not have", o, it.Key, kind, name)
			}
		}
		if key != "" && !data[key] {
			t.Errorf("%s references key %q of %s %s, which it does not have", o, key, kind, name)
		}
	}
	workloads := 0
	pods := map[string][]corev1.PodTemplateSpec{} // by namespace
	for _, o := range r.ofKind("Deployment", "StatefulSet", "DaemonSet") {
		workloads++
		var tmpl corev1.PodTemplateSpec
		spec, _ := o.Object["spec"].(map[string]any)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(spec["template"].(map[string]any), &tmpl); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		pods[o.GetNamespace()] = append(pods[o.GetNamespace()], tmpl)
		if sa := tmpl.Spec.ServiceAccountName; sa != "" {
			if _, ok := keys("ServiceAccount", o.GetNamespace(), sa); !ok {
				t.Errorf("%s runs as ServiceAccount %s, which is not in the manifests", o, sa)
			}
		}
		for _, v := range tmpl.Spec.Volumes {
			switch {
			case v.ConfigMap != nil:
				ref(o, "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items, "")
			case v.Secret != nil:
				ref(o, "Secret", v.Secret.SecretName, v.Secret.Items, "")
			case v.Projected != nil:
				for _, s := range v.Projected.Sources {
					if s.ConfigMap != nil {
						ref(o, "ConfigMap", s.ConfigMap.Name, s.ConfigMap.Items, "")
					}
					if s.Secret != nil {
						ref(o, "Secret", s.Secret.Name, s.Secret.Items, "")
					}
				}
			}
		}
		for _, c := range append(tmpl.Spec.InitContainers, tmpl.Spec.Containers...) {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if s := e.ValueFrom.SecretKeyRef; s != nil {
					ref(o, "Secret", s.Name, nil, s.Key)
				}
				if s := e.ValueFrom.ConfigMapKeyRef; s != nil {
					ref(o, "ConfigMap", s.Name, nil, s.Key)
				}
			}
		}
	}
	if workloads < 3 {
		t.Errorf("found %d workloads, want the receiver, Redis and NPD", workloads)
	}

	// NetworkPolicies select pods that exist, and name ports they have.
	selected := func(ns string, ls metav1.LabelSelector) []corev1.PodTemplateSpec {
		sel, err := metav1.LabelSelectorAsSelector(&ls)
		if err != nil {
			t.Fatal(err)
		}
		var out []corev1.PodTemplateSpec
		for _, p := range pods[ns] {
			if sel.Matches(labels.Set(p.Labels)) {
				out = append(out, p)
			}
		}
		return out
	}
	for _, o := range r.ofKind("NetworkPolicy") {
		np := typed[networkingv1.NetworkPolicy](t, o)
		targets := selected(np.Namespace, np.Spec.PodSelector)
		if len(targets) == 0 {
			t.Errorf("%s selects no pods", o)
		}
		for _, in := range np.Spec.Ingress {
			for _, p := range in.Ports {
				if p.Port == nil || p.Port.Type != intstr.String {
					continue
				}
				if !slices.ContainsFunc(targets, func(pt corev1.PodTemplateSpec) bool {
					return slices.ContainsFunc(pt.Spec.Containers, func(c corev1.Container) bool {
						return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.Port.StrVal })
					})
				}) {
					t.Errorf("%s: port %q is not a port of the pods it selects", o, p.Port.StrVal)
				}
			}
			for _, from := range in.From {
				if from.PodSelector != nil && from.NamespaceSelector == nil && len(selected(np.Namespace, *from.PodSelector)) == 0 {
					t.Errorf("%s: ingress from a podSelector that matches no pods", o)
				}
			}
		}
	}
}

// TestReceiverConfig runs node-healer's own validator on the config the
// ConfigMap carries, with its secret files replaced by temporary ones, and
// checks it against the Deployment's mounts, the Redis Service and the
// rules' routing labels.
func TestReceiverConfig(t *testing.T) {
	r := renderT(t)
	cm := r.find(t, "ConfigMap", "node-healer-config")
	data, _ := cm.Object["data"].(map[string]any)
	text, _ := data[configFileName].(string)
	if text == "" {
		t.Fatalf("ConfigMap node-healer-config has no %s", configFileName)
	}
	cfg := parseConfig(t, text)

	// The secret files the config names are the ones the Deployment mounts.
	d := receiverDeployment(t, r)
	mounted := mountedFiles(t, d.Spec.Template.Spec, d.Spec.Template.Spec.Containers[0], configMountDir)
	for field, p := range map[string]string{"webhook.auth.bearer_token_file": cfg.Webhook.Auth.BearerTokenFile, "redis.password_file": cfg.Redis.PasswordFile} {
		if filepath.Dir(p) != configMountDir || !slices.Contains(mounted, filepath.Base(p)) {
			t.Errorf("%s %s is not mounted (%s holds %v)", field, p, configMountDir, mounted)
		}
	}

	// redis.url names the Redis Service.
	u, err := url.Parse(cfg.Redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	svc := typed[corev1.Service](t, r.find(t, "Service", "redis"))
	if want := svc.Name + "." + svc.Namespace + ".svc"; u.Hostname() != want {
		t.Errorf("redis.url host %q, want the Service %s", u.Hostname(), want)
	}
	if len(svc.Spec.Ports) != 1 || u.Port() != "6379" || svc.Spec.Ports[0].Port != 6379 {
		t.Errorf("redis.url port %q, Service ports %+v", u.Port(), svc.Spec.Ports)
	}

	// Routing: every alert the rules send to node-healer with a runbook
	// that exists is routed to that runbook; alerts naming a runbook that
	// does not exist (yet) match no route (never a different runbook).
	known := builtinRunbooks(t)
	role := r.find(t, "Role", "node-healer-node-exec")
	if cfg.NodeExec.Namespace != role.GetNamespace() {
		t.Errorf("node_exec.namespace %q: node-healer's node-exec Role allows pods only in %s", cfg.NodeExec.Namespace, role.GetNamespace())
	}
	ns := r.find(t, "Namespace", role.GetNamespace())
	if got := ns.GetLabels()["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("namespace %s (node-exec pods) enforces Pod Security %q; they need privileged", ns.GetName(), got)
	}
	if got := r.find(t, "Namespace", "node-healer").GetLabels()["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("the receiver's namespace enforces Pod Security %q, want restricted", got)
	}
	routed := 0
	for _, a := range ruleAlerts(t) {
		if a.Labels["node_healer"] != "true" {
			continue
		}
		lset := map[string]string{"alertname": a.Alert, "node": "n1"}
		for k, v := range a.Labels {
			lset[k] = v
		}
		var route *config.Route
		for _, rt := range cfg.Routes {
			if rt.Matches(lset) {
				route = rt
				break
			}
		}
		want := a.Labels["remediation"]
		switch {
		case slices.Contains(known, want) && route == nil:
			t.Errorf("alert %s (remediation=%s) matches no route", a.Alert, want)
		case route != nil && route.Runbook != want:
			t.Errorf("alert %s (remediation=%s) is routed to runbook %s", a.Alert, want, route.Runbook)
		case route != nil:
			routed++
			if n, ok := route.Node(lset); !ok || n != "n1" {
				t.Errorf("route %s takes node %q from alert %s, want n1", route.Name, n, a.Alert)
			}
		}
	}
	if routed == 0 {
		t.Error("no alert in rules/ is routed by the deploy config")
	}
	t.Logf("%d remediation alerts routed by the deploy config", routed)
}

// parseConfig validates a config text with config.Parse, after pointing
// its secret files at temporary ones (as internal/config's tests do).
func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	orig := map[string]string{}
	for _, name := range []string{"webhook-token", "redis-password"} {
		p := configMountDir + "/" + name
		if !strings.Contains(text, p) {
			t.Fatalf("config does not name %s", p)
		}
		tmp := filepath.Join(dir, name)
		if err := os.WriteFile(tmp, []byte("test-"+name+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(text, p, tmp)
		orig[tmp] = p
	}
	cfg, err := config.Parse([]byte(text), dir, builtinRunbooks(t))
	if err != nil {
		t.Fatalf("receiver/node-healer.yml is rejected by node-healer's validator: %v", err)
	}
	for i, r := range cfg.Routes { // as `receiver check-config` does
		if err := runbooks.ValidateParams(r.Params); err != nil {
			t.Fatalf("receiver/node-healer.yml: routes[%d].params: %v", i, err)
		}
	}
	if cfg.Webhook.Auth.Token() == "" || cfg.Redis.Password() == "" {
		t.Fatal("webhook token or Redis password not read")
	}
	// Report the paths as the pod sees them.
	cfg.Webhook.Auth.BearerTokenFile = orig[cfg.Webhook.Auth.BearerTokenFile]
	cfg.Redis.PasswordFile = orig[cfg.Redis.PasswordFile]
	return cfg
}

type ruleAlert struct {
	Alert  string            `yaml:"alert"`
	Labels map[string]string `yaml:"labels"`
}

func ruleAlerts(t *testing.T) []ruleAlert {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []ruleAlert `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []ruleAlert
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// TestRBACShape is the static half of TestRBAC: no wildcards, no access to
// Secrets, no RBAC or impersonation verbs, and bindings only to the
// ServiceAccounts defined here.
func TestRBACShape(t *testing.T) {
	r := renderT(t)
	forbiddenVerbs := []string{"*", "escalate", "bind", "impersonate", "deletecollection"}
	for _, o := range r.ofKind("ClusterRole", "Role") {
		var role rbacv1.ClusterRole // a Role's fields are a subset
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		rules := role.Rules
		if len(rules) == 0 {
			t.Errorf("%s has no rules", o)
		}
		for i, rule := range rules {
			for _, s := range slices.Concat(rule.APIGroups, rule.Resources, rule.ResourceNames, rule.NonResourceURLs) {
				if strings.Contains(s, "*") {
					t.Errorf("%s rules[%d]: wildcard %q", o, i, s)
				}
			}
			for _, v := range rule.Verbs {
				if slices.Contains(forbiddenVerbs, v) {
					t.Errorf("%s rules[%d]: verb %q", o, i, v)
				}
			}
			for _, res := range rule.Resources {
				if res == "secrets" || strings.HasPrefix(res, "serviceaccounts") || strings.HasPrefix(res, "pods/exec") || strings.HasPrefix(res, "nodes/proxy") {
					t.Errorf("%s rules[%d]: access to %s", o, i, res)
				}
			}
			if slices.Contains(rule.APIGroups, rbacv1.GroupName) {
				t.Errorf("%s rules[%d]: access to RBAC objects", o, i)
			}
		}
	}
	sas := map[string]bool{}
	for _, o := range r.ofKind("ServiceAccount") {
		sas[o.GetNamespace()+"/"+o.GetName()] = true
	}
	for _, o := range r.ofKind("ClusterRoleBinding", "RoleBinding") {
		var b rbacv1.RoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		for _, s := range b.Subjects {
			if s.Kind != rbacv1.ServiceAccountKind || !sas[s.Namespace+"/"+s.Name] {
				t.Errorf("%s binds %s %s/%s, not one of this deployment's ServiceAccounts", o, s.Kind, s.Namespace, s.Name)
			}
		}
		if b.RoleRef.Name == "cluster-admin" || b.RoleRef.Name == "admin" || b.RoleRef.Name == "edit" {
			t.Errorf("%s binds the broad role %s", o, b.RoleRef.Name)
		}
	}
}

// TestSecretFilesIgnored: the files the secretGenerator reads are never
// committed, and never sent into a container build context.
func TestSecretFilesIgnored(t *testing.T) {
	for _, f := range []string{"base/secrets/webhook-token", "base/secrets/redis-password"} {
		cmd := exec.Command("git", "check-ignore", "--no-index", "-q", f)
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil: // ignored
		case errors.As(err, &ee) && ee.ExitCode() == 1:
			t.Errorf("%s is not ignored by git: it holds a credential", f)
		default:
			// No git (e.g. a source tarball): check the ignore file itself.
			b, rerr := os.ReadFile("base/secrets/.gitignore")
			if rerr != nil || !slices.Contains(strings.Fields(string(b)), "*") {
				t.Errorf("git check-ignore failed (%v) and base/secrets/.gitignore does not ignore everything", err)
			}
		}
	}
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("deploy/base/secrets")) {
		t.Error(".dockerignore must exclude deploy/base/secrets")
	}
}

// TestAlertmanagerURL: the webhook URL in alertmanager/ is this Service.
func TestAlertmanagerURL(t *testing.T) {
	r := renderT(t)
	svc := typed[corev1.Service](t, r.find(t, "Service", "node-healer"))
	want := "http://" + svc.Name + "." + svc.Namespace + ".svc:9095/webhook"
	b, err := os.ReadFile("../alertmanager/node-healer-route.yml")
	if err != nil {
		t.Fatal(err)
	}
	var am struct {
		Receivers []struct {
			Name           string `yaml:"name"`
			WebhookConfigs []struct {
				URL string `yaml:"url"`
			} `yaml:"webhook_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(b, &am); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, rc := range am.Receivers {
		for _, w := range rc.WebhookConfigs {
			urls = append(urls, w.URL)
		}
	}
	if !slices.Contains(urls, want) {
		t.Errorf("alertmanager/node-healer-route.yml webhook URLs %q, want %s", urls, want)
	}
}

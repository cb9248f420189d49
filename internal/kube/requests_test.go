package kube

import (
	"net/http"
	"testing"
)

func TestRequestKind(t *testing.T) {
	for _, tc := range []struct{ method, url, verb, resource string }{
		{"GET", "/api/v1/nodes/n1", "get", "nodes"},
		{"GET", "/api/v1/nodes?limit=500", "list", "nodes"},
		{"GET", "/api/v1/nodes?watch=true&resourceVersion=5", "watch", "nodes"},
		{"PATCH", "/api/v1/nodes/n1", "patch", "nodes"},
		{"GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", "get", "leases"},
		{"GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases?watch=true", "watch", "leases"},
		{"POST", "/api/v1/namespaces/web/pods/p1/eviction", "create", "pods/eviction"},
		{"GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1", "list", "pods"},
		{"POST", "/apis/events.k8s.io/v1/namespaces/default/events", "create", "events"},
		{"GET", "/api/v1/namespaces/web", "get", "namespaces"},
		{"GET", "/version", "get", "other"},
	} {
		r, _ := http.NewRequest(tc.method, "https://k8s"+tc.url, nil)
		verb, res := requestKind(r)
		if verb != tc.verb || res != tc.resource {
			t.Errorf("%s %s: %s %s, want %s %s", tc.method, tc.url, verb, res, tc.verb, tc.resource)
		}
	}
}

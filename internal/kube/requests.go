package kube

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
)

// CountRequests makes every request made with cfg (and every client built
// from it, informers included) count in node_healer_kubernetes_requests_total
// by verb (get, list, watch, create, patch, update, delete), resource and
// status code (0: no response). client-go's own metrics hooks are one
// global per process and carry no resource; this is per client.
func CountRequests(cfg *rest.Config, reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "node_healer_kubernetes_requests_total",
		Help: "Kubernetes API requests node-healer made, by verb, resource and HTTP status code (0: no response).",
	}, []string{"verb", "resource", "code"})
	if reg != nil {
		reg.MustRegister(c)
	}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return countingRT{rt: rt, c: c}
	})
	return c
}

type countingRT struct {
	rt http.RoundTripper
	c  *prometheus.CounterVec
}

func (t countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	code := 0
	if resp != nil {
		code = resp.StatusCode
	}
	verb, resource := requestKind(r)
	t.c.WithLabelValues(verb, resource, strconv.Itoa(code)).Inc()
	return resp, err
}

// requestKind names a request the way the API server's audit log does:
// /api/v1/namespaces/NS/pods/NAME/eviction → create pods/eviction.
func requestKind(r *http.Request) (verb, resource string) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(r.Method), "other"
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) != 2 {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return strings.ToLower(r.Method), "other"
	}
	resource = parts[0]
	named := len(parts) >= 2
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case r.URL.Query().Get("watch") == "true":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodPut:
		verb = "update"
	case http.MethodDelete:
		verb = "delete"
	default:
		verb = strings.ToLower(r.Method)
	}
	return verb, resource
}

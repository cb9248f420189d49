package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// benchServer is the pages over fixtures, in process (no network).
func benchServer(b *testing.B, runs int) http.Handler {
	b.Helper()
	u, err := New(Options{Status: statusOf(nil), Runs: &fakeRuns{runs: append(oneOfEach(), many(runs)...)}, Identity: basicIdentity,
		Actions: &fakeActions{}, Runbooks: []string{"cordon", "reboot"}, AlertmanagerURL: "http://am:9093"})
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	u.Mount(e)
	return e
}

func benchGet(b *testing.B, h http.Handler, path string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.SetBasicAuth("alice", "pw")
	var size int
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d", path, rec.Code)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/page")
}

// BenchmarkOverview: GET / over N stored runs (the overview reads up to
// 1000): sorting them into sections, the safety state over the same list,
// rendering.
func BenchmarkOverview(b *testing.B) {
	for _, n := range []int{0, 500, 1000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) { benchGet(b, benchServer(b, n), "/") })
	}
}

// BenchmarkRunsPage: GET /runs (the newest 200) and ?limit=1000 (all
// 1000 stored runs).
func BenchmarkRunsPage(b *testing.B) {
	h := benchServer(b, 992)
	b.Run("limit=200", func(b *testing.B) { benchGet(b, h, "/runs") })
	b.Run("limit=1000", func(b *testing.B) { benchGet(b, h, "/runs?limit=1000") })
}

// BenchmarkRunPage: GET /runs/ID of a finished reboot run (9 steps).
func BenchmarkRunPage(b *testing.B) { benchGet(b, benchServer(b, 500), "/runs/run-succeeded") }

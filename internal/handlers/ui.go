package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/node-healer/node-healer/internal/ui"
)

// mountUI serves the operator's page; its heal form takes the manual-run
// path of POST /api/v1/runs (same validation, dedupe, queue and gates;
// counted in node_healer_manual_requests_total).
func mountUI(e *echo.Echo, o ui.Options, manual *manualHandler, codes *prometheus.CounterVec, log *slog.Logger) {
	if o.Heal == nil {
		o.Heal = func(ctx context.Context, r ui.HealRequest) (ui.HealReply, error) {
			rep, code, err := manual.submit(ctx, ManualRequest{Node: r.Node, Runbook: r.Runbook, Reason: r.Reason, DryRun: r.DryRun, RequestedBy: r.By})
			if err != nil {
				code = http.StatusInternalServerError
				msg := err.Error()
				if he, ok := err.(*echo.HTTPError); ok {
					code, msg = he.Code, fmt.Sprint(he.Message)
				}
				err = &ui.Error{Code: code, Msg: msg}
			}
			if codes != nil {
				codes.WithLabelValues(strconv.Itoa(code)).Inc()
			}
			return ui.HealReply{Run: rep.Run, Duplicate: rep.Duplicate, Status: rep.Status, Detail: rep.Detail}, err
		}
	}
	if o.Log == nil {
		o.Log = log
	}
	u, err := ui.New(o)
	if err != nil {
		// The templates are embedded and rendered by the tests: a bug.
		log.Error("operator page not served", "err", err)
		return
	}
	u.Mount(e)
}

package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// reload is POST /-/reload: 403 unless the lifecycle API is enabled
// (--web.enable-lifecycle, as in Prometheus and Alertmanager), else the
// reload's outcome: 200, or 500 with the reason (the old configuration is
// kept).
func reload(o Options) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !o.EnableLifecycle || o.Reload == nil {
			return echo.NewHTTPError(http.StatusForbidden, "lifecycle API is not enabled (--web.enable-lifecycle)")
		}
		if err := o.Reload(c.Request().Context()); err != nil {
			return echo.NewHTTPError(http.StatusInternalServerError, "reload failed, old configuration kept: "+err.Error())
		}
		return c.String(http.StatusOK, "OK\n")
	}
}

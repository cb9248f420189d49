package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/node-healer/node-healer/internal/config"
)

// authenticate checks the webhook's bearer token (what Alertmanager's
// http_config.authorization sends), compared in constant time. It runs on
// top of the web configuration file (exporter-toolkit: TLS, client
// certificates, basic_auth_users), which has already admitted the request.
// current is called per request, so a reloaded token applies at once.
// Failures get 401 with no detail.
func authenticate(current func() config.Auth) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			a := current()
			token := string(a.Token())
			if token == "" && a.AllowUnauthenticated {
				return next(c)
			}
			h := c.Request().Header.Get("Authorization")
			if token != "" && len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") && equal(h[7:], token) {
				return next(c)
			}
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="node-healer"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "unauthorized")
		}
	}
}

// equal compares secrets in constant time (hashing first so the length
// of the secret does not leak either).
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

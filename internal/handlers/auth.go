package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/node-healer/node-healer/internal/config"
)

// authenticate accepts a bearer token and/or basic auth, compared in
// constant time. Failures get 401 with no detail.
func authenticate(a config.Auth) echo.MiddlewareFunc {
	token := string(a.Token())
	var user, pass string
	if a.BasicAuth != nil {
		user, pass = a.BasicAuth.Username, string(a.BasicAuth.Password())
	}
	open := a.AllowUnauthenticated && token == "" && user == ""
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if open {
				return next(c)
			}
			r := c.Request()
			if token != "" {
				if h := r.Header.Get("Authorization"); len(h) > 7 && h[:7] == "Bearer " && equal(h[7:], token) {
					return next(c)
				}
			}
			if user != "" {
				if u, p, ok := r.BasicAuth(); ok && equal(u, user) && equal(p, pass) {
					return next(c)
				}
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

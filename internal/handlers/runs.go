package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/node-healer/node-healer/internal/runbooks"
)

type runsAPI struct{ runs Runs }

func (a *runsAPI) list(c echo.Context) error {
	limit := 50
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return echo.NewHTTPError(http.StatusBadRequest, "limit must be a number from 1 to 1000")
		}
		limit = n
	}
	runs, err := a.runs.ListJSON(c.Request().Context(), limit)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "cannot read runs: "+err.Error())
	}
	// {"runs":[…]} around the stored objects, written once with its length.
	n := len(`{"runs":[]}`+"\n") + len(runs)
	for _, r := range runs {
		n += len(r)
	}
	out := make([]byte, 0, n)
	out = append(out, `{"runs":[`...)
	for i, r := range runs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, r...)
	}
	out = append(out, "]}\n"...) // the newline echo's c.JSON ends with, as before
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(out)))
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, out)
}

func (a *runsAPI) get(c echo.Context) error {
	r, err := a.runs.Load(c.Request().Context(), c.Param("id"))
	if errors.Is(err, runbooks.ErrRunNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, "no run with ID "+c.Param("id"))
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "cannot read run: "+err.Error())
	}
	return c.JSON(http.StatusOK, r)
}

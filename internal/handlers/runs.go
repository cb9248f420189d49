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
	runs, err := a.runs.List(c.Request().Context(), limit)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "cannot read runs: "+err.Error())
	}
	if runs == nil {
		runs = []*runbooks.Run{}
	}
	return c.JSON(http.StatusOK, map[string]any{"runs": runs})
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

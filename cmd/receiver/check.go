package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// registry is the set of runbooks this build ships.
func registry() *runbooks.Registry {
	r, err := runbooks.NewRegistry(runbooks.Builtin()...)
	if err != nil {
		panic(err) // a programming error in the built-in runbooks
	}
	return r
}

func loadConfig(path string) (*config.Config, error) {
	c, err := config.LoadFile(path, registry().Names())
	if err != nil {
		return nil, err
	}
	return c, checkParams(path, c)
}

// loadConfigForRedis is loadConfig for the commands that only talk to
// Redis (runs, status, pause, resume): only Redis' secret files are read.
func loadConfigForRedis(path string) (*config.Config, error) {
	c, err := config.LoadFileForRedis(path, registry().Names())
	if err != nil {
		return nil, err
	}
	return c, checkParams(path, c)
}

// checkParams validates each route's runbook parameters (names and values).
func checkParams(path string, c *config.Config) error {
	for i, r := range c.Routes {
		if err := runbooks.ValidateParams(r.Params); err != nil {
			return fmt.Errorf("%s: routes[%d].params: %w", path, i, err)
		}
	}
	if _, err := routeWindows(c); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func runCheckConfig(files []string, webConfig string, out io.Writer) error {
	if webConfig != "" {
		if err := web.Validate(webConfig); err != nil {
			return fmt.Errorf("--web.config.file %s: %w", webConfig, err)
		}
		fmt.Fprintf(out, "%s: OK — web configuration\n", webConfig)
	}
	for _, f := range files {
		// Secrets are mounted where serve runs, not necessarily here: a
		// missing one is a warning, an empty one an error.
		var missing []string
		c, err := config.LoadFileCheck(f, registry().Names(), func(field, path string, err error) {
			missing = append(missing, fmt.Sprintf("%s: warning: %s: %s is not readable here (%v); serve needs it", f, field, path, errors.Unwrap(err)))
		})
		if err == nil {
			err = checkParams(f, c)
		}
		if err != nil {
			return err
		}
		inventory := ""
		if inv := c.BMC.InventoryFile; inv != "" {
			seen := map[string]bool{}
			nodes, err := bmc.LoadInventoryCheck(inv, func(where, path string, err error) {
				if !seen[path] {
					seen[path] = true
					missing = append(missing, fmt.Sprintf("%s: warning: bmc inventory %s: password_file %s (%s) is not readable here (%v); serve needs it", f, inv, path, where, errors.Unwrap(err)))
				}
			})
			if err != nil {
				return fmt.Errorf("%s: bmc.inventory_file: %w", f, err)
			}
			inventory = fmt.Sprintf("; BMC inventory: %d nodes", len(nodes.Nodes))
		}
		used := map[string]bool{}
		for _, r := range c.Routes {
			used[r.Runbook] = true
		}
		var books []string
		for b := range used {
			books = append(books, b)
		}
		sort.Strings(books)
		fmt.Fprintf(out, "%s: OK — %d routes, runbooks: %s; redis %s; %d workers; lock ttl %s%s\n",
			f, len(c.Routes), strings.Join(books, ", "), c.Redis.Describe(), c.Workers.Count, c.Locks.TTL, inventory)
		for _, d := range c.Deprecations() {
			fmt.Fprintf(out, "%s: warning: %s\n", f, d)
		}
		for _, m := range missing {
			fmt.Fprintln(out, m)
		}
	}
	return nil
}

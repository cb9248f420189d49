package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

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
	return config.LoadFile(path, registry().Names())
}

func runCheckConfig(files []string, out io.Writer) error {
	for _, f := range files {
		c, err := loadConfig(f)
		if err != nil {
			return err
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
		fmt.Fprintf(out, "%s: OK — %d routes, runbooks: %s; redis %s; %d workers; lock ttl %s\n",
			f, len(c.Routes), strings.Join(books, ", "), c.Redis.URL, c.Workers.Count, c.Locks.TTL)
	}
	return nil
}

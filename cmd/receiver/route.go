package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/node-healer/node-healer/internal/config"
)

type routeTestOptions struct {
	ConfigFile string
	Labels     []string
}

func runRouteTest(o routeTestOptions, out io.Writer) error {
	c, err := config.LoadFileSkipSecrets(o.ConfigFile, registry().Names())
	if err != nil {
		return err
	}
	lbls := map[string]string{}
	for _, kv := range o.Labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("label %q: want name=value", kv)
		}
		lbls[k] = strings.Trim(v, `"`)
	}
	r := c.Match(lbls)
	if r == nil {
		fmt.Fprintln(out, "no route")
		return nil
	}
	node, ok := r.Node(lbls)
	if !ok {
		node = fmt.Sprintf("<missing: label %q>", r.NodeLabel)
	}
	dry := ""
	if r.DryRun {
		dry = " (dry run)"
	}
	fmt.Fprintf(out, "route %s → runbook %s on node %s%s\n", r.Name, r.Runbook, node, dry)
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/promslog"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/bmcsim"
)

type options struct {
	Listen       string
	Mockup       string
	Systems      string
	BootTime     time.Duration
	ShutdownTime time.Duration
	PoweringOn   bool
	Username     string
	PasswordFile string
	TLSCert      string
	TLSKey       string
	Off          string
	PowerCycle   bool
	Deny         string
	ActionInfo   bool
	FaultSystems string
	Faults       bmcsim.Faults
	Refuse       string
	OnPowerExec  string
	LogFormat    string // logfmt or json
	LogLevel     string // debug, info (default), warn, error

	onListen func(net.Addr) // tests
}

func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (o options) simOptions(log *slog.Logger) (bmcsim.Options, error) {
	so := bmcsim.Options{Mockup: o.Mockup, BootTime: o.BootTime, ShutdownTime: o.ShutdownTime,
		PoweringOn: o.PoweringOn, Logger: log}
	if o.PasswordFile != "" {
		pw, err := bmc.ReadSecret(o.PasswordFile)
		if err != nil {
			return so, err
		}
		so.Username, so.Password = o.Username, pw.Reveal()
	}
	ids := list(o.Systems)
	faulty := list(o.FaultSystems)
	for _, f := range faulty {
		if len(ids) > 0 && !slices.Contains(ids, f) {
			return so, fmt.Errorf("--fault-systems: %s is not in --systems", f)
		}
	}
	f := o.Faults
	f.Refuse = list(o.Refuse)
	if f.ApplyDespiteError && f.ResetStatus == 0 {
		return so, errors.New("--apply-despite-error needs --reset-status")
	}
	if f.ResetStatus != 0 && (f.ResetStatus < 400 || f.ResetStatus > 599) {
		return so, fmt.Errorf("--reset-status %d: want 4xx or 5xx", f.ResetStatus)
	}
	mk := func(id string) bmcsim.System {
		s := bmcsim.System{ID: id, AllowPowerCycle: o.PowerCycle, Deny: list(o.Deny), ActionInfo: o.ActionInfo}
		if slices.Contains(list(o.Off), id) {
			s.PowerState = "Off"
		}
		if len(faulty) == 0 || slices.Contains(faulty, id) {
			s.Faults = f
		}
		return s
	}
	for _, id := range ids {
		so.Systems = append(so.Systems, mk(id))
	}
	if len(ids) == 0 && (o.PowerCycle || o.Deny != "" || o.ActionInfo || o.Off != "" || f.ResetStatus != 0 || f.ResetHang != 0 || f.IgnoreGraceful || len(f.Refuse) > 0 ||
		f.BootTime != 0 || f.NoBootProgress) {
		return so, errors.New("system and fault flags need --systems")
	}
	return so, nil
}

func run(ctx context.Context, o options, stderr io.Writer) error {
	lc := promslog.Config{Level: promslog.NewLevel(), Format: promslog.NewFormat(), Writer: stderr}
	if o.LogFormat != "" {
		if err := lc.Format.Set(o.LogFormat); err != nil {
			return err
		}
	}
	if o.LogLevel != "" {
		if err := lc.Level.Set(o.LogLevel); err != nil {
			return err
		}
	}
	log := promslog.New(&lc)
	so, err := o.simOptions(log)
	if err != nil {
		return err
	}
	if so.Mockup == "" {
		if so.Mockup, err = bmcsim.MockupDir(); err != nil {
			return err
		}
	}
	so.OnPower = func(system, state string) {
		log.Info("power", "system", system, "state", state)
		if o.OnPowerExec == "" {
			return
		}
		cmd := exec.CommandContext(ctx, "sh", "-c", o.OnPowerExec)
		cmd.Env = append(os.Environ(), "BMC_SYSTEM="+system, "BMC_POWER_STATE="+state)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			log.Warn("on-power-exec failed", "system", system, "state", state, "err", err)
		}
	}
	if so.Password == "" {
		log.Warn("authentication is off (no --password-file)")
	}
	sim, err := bmcsim.New(so)
	if err != nil {
		return err
	}
	defer sim.Close()

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if o.TLSCert != "" || o.TLSKey != "" {
		scheme = "https"
	}
	log.Info("serving Redfish", "url", scheme+"://"+ln.Addr().String()+"/redfish/v1/", "systems", strings.Join(sim.Systems(), ","),
		"boot_time", so.BootTime, "mockup", so.Mockup)
	if o.onListen != nil {
		o.onListen(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() {
		if scheme == "https" {
			errc <- srv.ServeTLS(ln, o.TLSCert, o.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sim.Close() // ends hanging answers so shutdown does not wait for them
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

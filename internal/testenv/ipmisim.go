package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IPMISimPath finds OpenIPMI's ipmi_sim: $IPMI_SIM, then PATH; if it is
// missing it runs scripts/deps.sh, which installs the openipmi package
// with apt-get when it can and otherwise fails printing the exact command.
// Tests never skip for it.
func IPMISimPath() (string, error) {
	if p := os.Getenv("IPMI_SIM"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("ipmi_sim"); err == nil {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "deps.sh"))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ipmi_sim not found (apt-get install -y openipmi): scripts/deps.sh: %w", err)
	}
	return exec.LookPath("ipmi_sim")
}

// IPMISimOptions configure one simulated server and its BMC.
type IPMISimOptions struct {
	Name     string // the node
	Username string // default "admin"
	Password string // default "secret"
	// OnPower is called when the simulated server starts (true) or stops
	// (false): ipmi_sim starts its startcmd on power on and ends it on
	// power off.
	OnPower func(on bool)
}

// IPMISim is an ipmi_sim process (a real IPMI 2.0 LAN BMC) on its own UDP
// port with its own lan.conf, emu file and state folder, managing one
// simulated server: its startcmd, a bash "host" that connects back to the
// simulator's VM interface (the protocol QEMU's ipmi-bmc-extern speaks),
// so the BMC can ask it for a graceful (ACPI) shutdown. The host records
// every power request the simulator sends it — power off (also the first
// half of a power cycle), reset, graceful shutdown — and its own starts
// and stops, in an events file: that is the simulator's account of the
// commands it acted on, not node-healer's.
type IPMISim struct {
	Port     int
	Username string
	Password string

	o      IPMISimOptions
	bin    string
	dir    string
	events string
	hung   string
	vmPort int

	mu   sync.Mutex
	cmd  *exec.Cmd
	seen int
	done chan struct{}
}

// StartIPMISim starts ipmi_sim in dir (which it creates) and waits for the
// simulated server to be on.
func StartIPMISim(dir string, o IPMISimOptions) (*IPMISim, error) {
	bin, err := IPMISimPath()
	if err != nil {
		return nil, err
	}
	if o.Username == "" {
		o.Username = "admin"
	}
	if o.Password == "" {
		o.Password = "secret"
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	vm, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &IPMISim{Port: port, Username: o.Username, Password: o.Password, o: o, bin: bin, dir: dir,
		events: filepath.Join(dir, "events"), hung: filepath.Join(dir, "hung"), vmPort: vm, done: make(chan struct{})}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	go s.follow()
	deadline := time.Now().Add(10 * time.Second)
	for s.Count("start") == 0 {
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("ipmi_sim for %s: the simulated server did not start (see %s)", o.Name, filepath.Join(dir, "ipmi_sim.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s, nil
}

// host is the startcmd: it connects to the VM interface, announces
// power, reset and graceful-shutdown capabilities, and logs what the BMC
// sends; a graceful shutdown ends it unless the "hung" file exists.
const ipmiHost = `#!/bin/bash
export LC_ALL=C
ev=%q; hung=%q
echo "start $$" >> "$ev"
trap 'echo "stop $$ term" >> "$ev"; exit 0' TERM
exec 3<>/dev/tcp/127.0.0.1/%d || { echo "novm $$" >> "$ev"; while :; do sleep 1; done; }
printf '\377\001\241\010\043\241' >&3
prev=
while IFS= read -r -d '' -n1 -u 3 c || [ -n "$c" ]; do
	if [ "$c" = $'\xa1' ]; then
		case "$prev" in
		$'\x03') echo "off $$" >> "$ev" ;;
		$'\x04') echo "reset $$" >> "$ev" ;;
		$'\x09')
			echo "soft $$" >> "$ev"
			if [ ! -e "$hung" ]; then echo "stop $$ graceful" >> "$ev"; exit 0; fi ;;
		esac
	fi
	prev=$c
done
echo "vmgone $$" >> "$ev"
`

func (s *IPMISim) writeConfig() error {
	host := filepath.Join(s.dir, "host.sh")
	if err := os.WriteFile(host, fmt.Appendf(nil, ipmiHost, s.events, s.hung, s.vmPort), 0o755); err != nil {
		return err
	}
	lan := fmt.Sprintf(`name %q
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  serial 15 127.0.0.1 %d codec VM
  startcmd "%s"
  startnow true
  poweroff_wait 2
  kill_wait 2
  user 2 true %q %q admin 10 none md2 md5 straight
`, s.o.Name, s.Port, s.vmPort, host, s.Username, s.Password)
	if err := os.WriteFile(filepath.Join(s.dir, "lan.conf"), []byte(lan), 0o600); err != nil {
		return err
	}
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n"
	return os.WriteFile(filepath.Join(s.dir, "node.emu"), []byte(emu), 0o644)
}

// Start (re)starts ipmi_sim; with startnow it powers the server on.
func (s *IPMISim) Start() error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "ipmi_sim.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "-c", filepath.Join(s.dir, "lan.conf"), "-f", filepath.Join(s.dir, "node.emu"),
		"-s", filepath.Join(s.dir, "state"), "-n")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start ipmi_sim: %w", err)
	}
	go func() { _ = cmd.Wait(); logf.Close() }()
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return nil
}

// Kill ends ipmi_sim at once (SIGKILL). The simulated server exits
// without a stop event when it loses its VM connection; Start brings the
// BMC back, and it starts the server again.
func (s *IPMISim) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

// SetHung makes the simulated OS ignore (true) or honour graceful
// shutdown requests.
func (s *IPMISim) SetHung(hung bool) error {
	if hung {
		return os.WriteFile(s.hung, nil, 0o644)
	}
	if err := os.Remove(s.hung); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Count returns how many events of a kind the simulated server logged:
// "start", "stop", "off" (a power off or the off half of a power cycle),
// "reset", "soft" (a graceful shutdown request).
func (s *IPMISim) Count(kind string) int {
	n := 0
	for _, e := range s.Events() {
		if strings.HasPrefix(e, kind+" ") {
			n++
		}
	}
	return n
}

// Events returns the events file's lines.
func (s *IPMISim) Events() []string {
	f, err := os.Open(s.events)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// follow calls OnPower for each start and stop, in order.
func (s *IPMISim) follow() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		ev := s.Events()
		s.mu.Lock()
		from := s.seen
		s.seen = len(ev)
		s.mu.Unlock()
		for _, e := range ev[from:] {
			if s.o.OnPower == nil {
				continue
			}
			switch {
			case strings.HasPrefix(e, "start "):
				s.o.OnPower(true)
			case strings.HasPrefix(e, "stop "):
				s.o.OnPower(false)
			}
		}
	}
}

// Stop ends ipmi_sim and the simulated server.
func (s *IPMISim) Stop() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.Kill()
	for _, e := range s.Events() {
		if f := strings.Fields(e); len(f) > 1 && f[0] == "start" {
			if pid, err := strconv.Atoi(f[1]); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
			}
		}
	}
}

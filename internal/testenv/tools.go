package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// mainModule is the module path that marks the repository root.
const mainModule = "github.com/node-healer/node-healer"

// ToolsDir is where the pinned tools live: $NODE_HEALER_TOOLS, else
// <repo root>/.cache/tools/bin.
func ToolsDir() (string, error) {
	if d := os.Getenv("NODE_HEALER_TOOLS"); d != "" {
		return filepath.Abs(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "tools", "bin"), nil
}

// ToolPath returns the path of a pinned tool (kube-apiserver, etcd, kwok,
// or one scripts/tools-prom.sh builds). If the binary is missing it runs
// `scripts/tools.sh NAME` to build it, with the script's progress on stderr:
// tests never skip for a missing tool.
func ToolPath(name string) (string, error) {
	dir, err := ToolsDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if isExecutable(p) {
		return p, nil
	}
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if isExecutable(p) {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%s is missing and cannot be built: %w", p, err)
	}
	fmt.Fprintf(os.Stderr, "testenv: %s not found in %s; running scripts/tools.sh %s\n", name, dir, name)
	// Through bash: works even where the script lost its executable bit.
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "tools.sh"), name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "NODE_HEALER_TOOLS="+dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/tools.sh %s: %w", name, err)
	}
	if !isExecutable(p) {
		return "", fmt.Errorf("scripts/tools.sh %s succeeded but %s is still missing", name, p)
	}
	return p, nil
}

// toolsMu keeps one process from running several builds at once; the
// script itself serialises builds across processes.
var toolsMu sync.Mutex

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot finds the repository root: the nearest folder, from the working
// directory up, whose go.mod declares the main module.
func RepoRoot() (string, error) {
	rootOnce.Do(func() { rootDir, rootErr = findRoot() })
	return rootDir, rootErr
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if modulePath(filepath.Join(dir, "go.mod")) == mainModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found: no go.mod for " + mainModule + " above the working directory")
		}
		dir = parent
	}
}

func modulePath(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

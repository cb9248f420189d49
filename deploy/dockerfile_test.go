package deploy

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// There is no Docker engine in CI, so the Dockerfile is checked in two
// halves: its instructions are parsed and asserted here, and the go build
// command is taken from its RUN line and run for real, checking that the
// result is the static, stripped binary a distroless/static image needs.

const dockerfile = "../Dockerfile"

type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

type stage struct {
	base, name string
	instrs     []instruction
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// parseDockerfile splits the file into stages of instructions, joining
// continuation lines and dropping comments (parser directives included).
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			var words []string
			for _, w := range strings.Fields(in.args) {
				if !strings.HasPrefix(w, "--") {
					words = append(words, w)
				}
			}
			st := stage{base: words[0]}
			if len(words) == 3 && strings.EqualFold(words[1], "AS") {
				st.name = words[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() > 0 {
		t.Fatal("Dockerfile ends in a continuation line")
	}
	return stages
}

// shellWords splits a shell command line: whitespace separates words,
// single and double quotes group (no expansion, no escapes inside).
func shellWords(s string) []string {
	var out []string
	var w strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, w.String())
	}
	return out
}

// envOf returns the KEY=VALUE pairs of a stage's ENV instructions.
func envOf(s stage) map[string]string {
	env := map[string]string{}
	for _, in := range s.all("ENV") {
		for _, kv := range shellWords(in.args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	return env
}

// goBuild is the builder stage's `go build` RUN line: the variables set
// before it and its arguments.
type goBuild struct {
	env  map[string]string
	args []string // after "go build"
	out  string   // -o
}

func findGoBuild(t *testing.T, s stage) goBuild {
	t.Helper()
	for _, in := range s.all("RUN") {
		words := shellWords(in.args)
		for len(words) > 0 && strings.HasPrefix(words[0], "--") { // --mount=...
			words = words[1:]
		}
		env := map[string]string{}
		for len(words) > 0 && strings.Contains(words[0], "=") {
			k, v, _ := strings.Cut(words[0], "=")
			env[k] = v
			words = words[1:]
		}
		if len(words) < 2 || words[0] != "go" || words[1] != "build" {
			continue
		}
		gb := goBuild{env: env, args: words[2:]}
		for i, a := range gb.args {
			if a == "-o" && i+1 < len(gb.args) {
				gb.out = gb.args[i+1]
			}
		}
		return gb
	}
	t.Fatal("Dockerfile: no `go build` RUN in the builder stage")
	return goBuild{}
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	builder, final := stages[0], stages[len(stages)-1]

	// Builder: Go 1.26, CGO off, trimmed and stripped build of the receiver.
	if !strings.HasPrefix(builder.base, "golang:1.26") || builder.name == "" {
		t.Errorf("builder stage: FROM %s AS %q, want golang:1.26 AS <name>", builder.base, builder.name)
	}
	gb := findGoBuild(t, builder)
	cgo, ok := gb.env["CGO_ENABLED"]
	if !ok {
		cgo = envOf(builder)["CGO_ENABLED"]
	}
	if cgo != "0" {
		t.Errorf("builder: CGO_ENABLED=%q, want 0", cgo)
	}
	for _, want := range []string{"-trimpath", "./cmd/receiver"} {
		if !slices.Contains(gb.args, want) {
			t.Errorf("go build %q lacks %q", gb.args, want)
		}
	}
	// Stripped, and stamped with the version (prometheus/common/version).
	if !slices.ContainsFunc(gb.args, func(a string) bool {
		return strings.HasPrefix(a, "-ldflags=-s -w ") && strings.Contains(a, "-X github.com/prometheus/common/version.Version=")
	}) {
		t.Errorf("go build %q: want -ldflags=\"-s -w -X github.com/prometheus/common/version.Version=…\"", gb.args)
	}
	if gb.out == "" {
		t.Error("go build has no -o")
	}

	// Final: distroless static, non-root, the binary from the builder.
	if final.base != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot", final.base)
	}
	if !slices.ContainsFunc(final.all("COPY"), func(in instruction) bool {
		w := strings.Fields(in.args)
		return slices.Equal(w, []string{"--from=" + builder.name, gb.out, "/receiver"})
	}) {
		t.Errorf("final stage does not COPY --from=%s %s /receiver", builder.name, gb.out)
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Error("final stage sets no USER")
	}
	for _, u := range users {
		if u.args != "65532:65532" {
			t.Errorf("Dockerfile:%d: USER %s, want 65532:65532", u.line, u.args)
		}
	}
	if ex := final.all("EXPOSE"); len(ex) != 1 || ex[0].args != "9095" {
		t.Errorf("final stage EXPOSE %v, want 9095", ex)
	}
	jsonArgs := func(cmd string) []string {
		ins := final.all(cmd)
		if len(ins) != 1 {
			t.Fatalf("final stage: want one %s, got %d", cmd, len(ins))
		}
		var v []string
		if err := json.Unmarshal([]byte(ins[0].args), &v); err != nil {
			t.Fatalf("Dockerfile:%d: %s must be exec (JSON) form: %v", ins[0].line, cmd, err)
		}
		return v
	}
	if got := jsonArgs("ENTRYPOINT"); !slices.Equal(got, []string{"/receiver"}) {
		t.Errorf("ENTRYPOINT %q, want [/receiver]", got)
	}
	wantCmd := []string{"serve", "--config.file=" + configMountDir + "/" + configFileName}
	if got := jsonArgs("CMD"); !slices.Equal(got, wantCmd) {
		t.Errorf("CMD %q, want %q (the path the Deployment mounts)", got, wantCmd)
	}

	// Nothing fetched from the network outside the package managers.
	for _, st := range stages {
		for _, in := range st.all("ADD") {
			if strings.Contains(in.args, "://") || strings.Contains(in.args, "git@") {
				t.Errorf("Dockerfile:%d: ADD of a remote source: %s", in.line, in.args)
			}
		}
	}
	for _, st := range stages {
		if strings.HasSuffix(st.base, ":latest") || !strings.Contains(st.base, ":") {
			t.Errorf("FROM %s: pin a tag", st.base)
		}
	}

	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", ".cache", "bin"} {
		if !slices.Contains(strings.Fields(string(b)), want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}

// TestDockerfileBuildIsStatic runs the Dockerfile's go build (for this
// machine's architecture) and checks the binary: statically linked (no
// ELF interpreter, no shared libraries), stripped, built with -trimpath
// and CGO off — what gcr.io/distroless/static needs.
func TestDockerfileBuildIsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the receiver (runs without -short)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("checks a linux ELF binary")
	}
	stages := parseDockerfile(t)
	gb := findGoBuild(t, stages[0])
	bin := filepath.Join(t.TempDir(), "receiver")
	args := slices.Clone(gb.args)
	for i := range args {
		if i > 0 && args[i-1] == "-o" {
			args[i] = bin
		}
	}
	env := append(os.Environ(), "GOFLAGS=") // the Dockerfile's own ENV follows
	for k, v := range envOf(stages[0]) {
		env = append(env, k+"="+v)
	}
	for k, v := range gb.env {
		v = strings.NewReplacer("$TARGETOS", runtime.GOOS, "$TARGETARCH", runtime.GOARCH).Replace(v)
		env = append(env, k+"="+v)
	}
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = ".."
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has an ELF interpreter (PT_INTERP): dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v (%v)", libs, err)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("binary not stripped: section %s (-ldflags=\"-s -w\")", s.Name)
		}
	}

	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	// (Go leaves -ldflags out of the build info under -trimpath; the
	// section check above stands for it.)
	for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[k] != want {
			t.Errorf("build setting %s=%q, want %q", k, settings[k], want)
		}
	}
	if bi.Path != "github.com/node-healer/node-healer/cmd/receiver" {
		t.Errorf("binary is %s, want the receiver", bi.Path)
	}

	// It runs (no loader, no libc needed).
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "serve") {
		t.Errorf("%s --help: %v\n%s", bin, err, out)
	}
}

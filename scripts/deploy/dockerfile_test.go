package deploy

import (
	"bufio"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, COPY, ...
	Args string
	Line int
}

func parseDockerfile(t *testing.T, file string) []instruction {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // comments inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// stage is the instructions from one FROM to the next.
type stage struct {
	Image, Name string
	Inst        []instruction
}

func stages(inst []instruction) []stage {
	var out []stage
	for _, in := range inst {
		if in.Cmd == "FROM" {
			var f []string
			for _, w := range strings.Fields(in.Args) {
				if !strings.HasPrefix(w, "--") {
					f = append(f, w)
				}
			}
			s := stage{Image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = f[2]
			}
			out = append(out, s)
			continue
		}
		if len(out) > 0 {
			out[len(out)-1].Inst = append(out[len(out)-1].Inst, in)
		}
	}
	return out
}

var goBuild = regexp.MustCompile(`go build\b.*?\s-o\s+(\S+)\s+(\./\S+)`)

func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	for _, binary := range []string{"mcpserver", "webclient"} {
		t.Run(binary, func(t *testing.T) {
			file := filepath.Join(root, "docker", binary+".Dockerfile")
			st := stages(parseDockerfile(t, file))
			if len(st) < 2 {
				t.Fatalf("%s has %d stages, want a build stage and a runtime stage", file, len(st))
			}
			for _, s := range st {
				if err := pinned(s.Image); err != nil {
					t.Errorf("FROM: %v", err)
				}
			}
			build, run := st[0], st[len(st)-1]
			if !strings.HasPrefix(build.Image, "golang:1.26") {
				t.Errorf("build stage image %q, want golang:1.26…", build.Image)
			}
			if !strings.HasPrefix(run.Image, "gcr.io/distroless/static") || !strings.HasSuffix(run.Image, ":nonroot") {
				t.Errorf("runtime image %q, want gcr.io/distroless/static…:nonroot (static binary, non-root)", run.Image)
			}

			// The build stage: CGO off, and go build of the binary's main package.
			var pkg, env string
			for _, in := range build.Inst {
				switch in.Cmd {
				case "ENV":
					env += " " + in.Args
				case "RUN":
					if m := goBuild.FindStringSubmatch(in.Args); m != nil {
						pkg = m[2]
						env += " " + in.Args
					}
				}
			}
			if !strings.Contains(env, "CGO_ENABLED=0") {
				t.Errorf("the build stage does not set CGO_ENABLED=0")
			}
			if want := "./" + binary + "/cmd/" + binary; pkg != want {
				t.Fatalf("go build builds %q, want %q", pkg, want)
			}

			// The runtime stage: the binary, a non-root user, a health check
			// run by the binary itself, and serve as the command.
			var user, health, entry, cmd string
			for _, in := range run.Inst {
				switch in.Cmd {
				case "USER":
					user = in.Args
				case "HEALTHCHECK":
					health = in.Args
				case "ENTRYPOINT":
					entry = in.Args
				case "CMD":
					cmd = in.Args
				}
			}
			if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
				t.Errorf("USER %q, want a non-root user", user)
			}
			bin := "/usr/local/bin/" + binary
			if !strings.Contains(health, `["`+bin+`", "healthcheck"]`) {
				t.Errorf("HEALTHCHECK %q should run %s healthcheck (the image has no shell or curl)", health, bin)
			}
			if !strings.Contains(entry, bin) || !strings.Contains(cmd, "serve") {
				t.Errorf("ENTRYPOINT %q CMD %q, want %s serve", entry, cmd, bin)
			}

			stageBuildContext(t, root, binary, build, pkg)
		})
	}
}

// stageBuildContext reproduces the build stage's COPY instructions (with the
// Dockerfile's .dockerignore applied) in a temporary directory and lists the
// package go build would build there, offline: a COPY that misses a module
// of the workspace, a replace target or a source directory fails here.
func stageBuildContext(t *testing.T, root, binary string, build stage, pkg string) {
	t.Helper()
	ignore := readDockerignore(t, filepath.Join(root, "docker", binary+".Dockerfile.dockerignore"))
	dir := t.TempDir()
	workdir := "/"
	for _, in := range build.Inst {
		switch in.Cmd {
		case "WORKDIR":
			workdir = path.Join(workdir, in.Args)
		case "COPY":
			f := strings.Fields(in.Args)
			var args []string
			for _, a := range f {
				if strings.HasPrefix(a, "--from") {
					args = nil
					break
				}
				if !strings.HasPrefix(a, "--") {
					args = append(args, a)
				}
			}
			if len(args) < 2 {
				continue
			}
			dst := args[len(args)-1]
			if !path.IsAbs(dst) {
				dst = path.Join(workdir, dst)
			}
			for _, src := range args[:len(args)-1] {
				copyInto(t, root, path.Clean(src), filepath.Join(dir, filepath.FromSlash(dst)), strings.HasSuffix(args[len(args)-1], "/"), ignore)
			}
		}
	}
	if workdir != "/src" {
		t.Fatalf("build stage WORKDIR %q; this test expects /src", workdir)
	}
	src := filepath.Join(dir, "src")
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Error,DepsErrors", pkg)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=", "GOFLAGS=-buildvcs=false -mod=readonly", "GOPROXY=off", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in the staged build context, go list %s: %v\n%s", pkg, err, tail(out, 40))
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("in the staged build context, %s: %s", p.ImportPath, p.Error.Err)
		}
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// copyInto copies src (relative to the context root) like Docker's COPY:
// a directory's contents go into dst, a file goes to dst (or into it when
// dst ends in a slash). Files the .dockerignore excludes are not in the
// context, so they are skipped; a source missing from the context fails.
func copyInto(t *testing.T, root, src, dst string, dstIsDir bool, ignore *dockerignore) {
	t.Helper()
	abs := filepath.Join(root, filepath.FromSlash(src))
	fi, err := os.Stat(abs)
	if err != nil || ignore.excluded(src) && !fi.IsDir() {
		t.Fatalf("COPY %s: not in the build context (%v)", src, err)
	}
	if !fi.IsDir() {
		if dstIsDir {
			dst = filepath.Join(dst, filepath.Base(abs))
		}
		copyFile(t, abs, dst)
		return
	}
	copied := 0
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return nil
		}
		if ignore.excluded(rel) {
			return nil
		}
		sub, _ := filepath.Rel(abs, p)
		copyFile(t, p, filepath.Join(dst, sub))
		copied++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if copied == 0 {
		t.Fatalf("COPY %s: the .dockerignore excludes every file", src)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// dockerignore implements the matching of .dockerignore files: patterns in
// order, the last match wins, "!" re-includes, "**" spans directories, and
// a pattern matching a parent directory matches everything below it.
type dockerignore struct {
	rules []ignoreRule
}

type ignoreRule struct {
	re      *regexp.Regexp
	include bool
}

func readDockerignore(t *testing.T, file string) *dockerignore {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (each Dockerfile keeps its context small with its own .dockerignore)", err)
	}
	var d dockerignore
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if p, ok := strings.CutPrefix(line, "!"); ok {
			r.include, line = true, p
		}
		line = strings.TrimPrefix(path.Clean(strings.TrimPrefix(line, "/")), "/")
		re, err := globRegexp(line)
		if err != nil {
			t.Fatalf("%s: pattern %q: %v", file, line, err)
		}
		r.re = re
		d.rules = append(d.rules, r)
	}
	return &d
}

func globRegexp(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			if i+1 < len(pattern) && pattern[i+1] == '*' {
				i++
				if i+1 < len(pattern) && pattern[i+1] == '/' {
					i++
					b.WriteString("(.*/)?")
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

func (d *dockerignore) matches(r ignoreRule, p string) bool {
	for {
		if r.re.MatchString(p) {
			return true
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

func (d *dockerignore) excluded(p string) bool {
	ex := false
	for _, r := range d.rules {
		if d.matches(r, p) {
			ex = !r.include
		}
	}
	return ex
}

func TestDockerignoreMatching(t *testing.T) {
	d := &dockerignore{}
	for _, p := range []struct {
		pat     string
		include bool
	}{{"**", false}, {"shared", true}, {"mcpserver", true}, {"webclient/go.mod", true}, {"**/.data", false}, {"**/*_test.go", false}} {
		re, err := globRegexp(p.pat)
		if err != nil {
			t.Fatal(err)
		}
		d.rules = append(d.rules, ignoreRule{re: re, include: p.include})
	}
	for p, want := range map[string]bool{
		"go.work": true, "shared/doc.go": false, "mcpserver/cmd/mcpserver/main.go": false,
		"webclient/go.mod": false, "webclient/internal/x.go": true, "mcpserver/.data/x.db": true,
		"shared/pgtest/pgtest_test.go": true, "README.md": true,
	} {
		if got := d.excluded(p); got != want {
			t.Errorf("excluded(%q) = %v, want %v", p, got, want)
		}
	}
}

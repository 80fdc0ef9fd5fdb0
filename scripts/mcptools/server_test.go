// Package mcptools tests a real mcpserver binary with MCP tools from npm, run
// with Node 22 from npm: MCP Inspector in CLI mode (TestInspector), the
// official TypeScript SDK running the whole OAuth flow
// (TestTypeScriptSDKOAuth, scripts/mcp-tools/ts-oauth-flow.mjs), and the
// conformance suite's authorization-server scenarios
// (TestAuthorizationConformance).
// scripts/install-node22.sh installs the tools under .tools/; without them
// the tests skip with a reason, and fail under CI=true.
package mcptools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const password = "correct horse battery staple"

// repoRoot is the directory holding go.work, above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

// nodeTools are the paths of Node 22 and the npm tools under .tools/.
type nodeTools struct {
	root      string // the repository
	node      string // .tools/node22/node_modules/.bin/node
	mcpDir    string // .tools/mcp
	inspector string // the Inspector's launcher script
}

// requireTools returns the installed tools, or skips the test with a reason
// (fails it under CI=true) when something is missing.
func requireTools(t *testing.T) nodeTools {
	t.Helper()
	root, err := repoRoot()
	nt := nodeTools{root: root}
	if err == nil {
		nt.node = filepath.Join(root, ".tools", "node22", "node_modules", ".bin", "node")
		nt.mcpDir = filepath.Join(root, ".tools", "mcp")
		nt.inspector = filepath.Join(nt.mcpDir, "node_modules", "@modelcontextprotocol", "inspector", "clients", "launcher", "build", "index.js")
		for _, p := range []string{nt.node, nt.inspector, filepath.Join(nt.mcpDir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")} {
			if _, serr := os.Stat(p); serr != nil {
				err = serr
				break
			}
		}
	}
	if err != nil {
		msg := "Node 22 and the MCP tools from npm are not installed (run scripts/install-node22.sh): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return nt
}

// env is the environment of the npm tools: Node 22 first in PATH, so that
// anything they spawn with `node` gets it too.
func (nt nodeTools) env() []string {
	return append(os.Environ(), "PATH="+filepath.Dir(nt.node)+string(os.PathListSeparator)+os.Getenv("PATH"))
}

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// TestMain removes the binary built by mcpserverBinary.
func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// mcpserverBinary builds cmd/mcpserver once per test binary. It builds
// inside the mcpserver module, so it works with and without go.work.
func mcpserverBinary(t *testing.T, root string) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "mcptools-bin-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "mcpserver")
		cmd := exec.Command("go", "build", "-o", build.bin, "./cmd/mcpserver")
		cmd.Dir = filepath.Join(root, "mcpserver")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/mcpserver: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// server is a running mcpserver binary on SQLite in a temp dir.
type server struct {
	t    *testing.T
	bin  string
	env  []string
	dir  string
	URL  string // base URL, also the issuer
	log  *bytes.Buffer
	cmd  *exec.Cmd
	done chan error
}

// startServer builds and starts `mcpserver serve` on a free port and waits
// until /readyz answers; the test's cleanup stops it.
func startServer(t *testing.T, root string) *server {
	t.Helper()
	bin := mcpserverBinary(t, root)
	dir := t.TempDir()
	var last error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken meanwhile
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s := &server{t: t, bin: bin, dir: dir, URL: fmt.Sprintf("http://127.0.0.1:%d", port), log: &bytes.Buffer{}}
		s.env = serverEnv(dir, port)
		if last = s.start(); last == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatal(last)
	return nil
}

// serverEnv is the environment without any inherited MCP_, POSTGRES_ or
// OPENAI_ settings: SQLite under dir, the local hash embedder.
func serverEnv(dir string, port int) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCP_") && !strings.HasPrefix(kv, "POSTGRES_") && !strings.HasPrefix(kv, "OPENAI_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"MCP_SERVER_HOST=127.0.0.1",
		fmt.Sprintf("MCP_SERVER_PORT=%d", port),
		fmt.Sprintf("MCP_ISSUER_URL=http://127.0.0.1:%d", port),
		"MCP_DATA_DIR="+filepath.Join(dir, "data"),
		"MCP_EMBEDDER=hash",
	)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *server) start() error {
	s.cmd = exec.Command(s.bin, "serve")
	s.cmd.Dir = s.dir // no .env from the repository
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			return fmt.Errorf("mcpserver exited before it was ready (%v):\n%s", err, s.log)
		default:
		}
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return fmt.Errorf("mcpserver not ready after 30 s:\n%s", s.log)
}

// stop interrupts the server (graceful shutdown) and kills it if it hangs.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("mcpserver did not stop within 20 s of SIGINT")
	}
	if s.t.Failed() {
		s.t.Logf("mcpserver log:\n%s", s.log)
	}
}

// cli runs an admin command of the binary against the server's database
// and returns its stdout, trimmed.
func (s *server) cli(stdin string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("mcpserver %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// createUser creates an account with password through the CLI.
func (s *server) createUser(email string) {
	s.t.Helper()
	if id := s.cli(password+"\n", "users", "create", "--email", email, "--password-stdin"); id == "" {
		s.t.Fatal("users create printed no user id")
	}
}

// runNode runs node with args under a deadline, returning stdout; a failure
// fails the test with both outputs.
func runNode(t *testing.T, nt nodeTools, timeout time.Duration, stdin string, args ...string) (stdout string, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nt.node, args...)
	cmd.Dir = t.TempDir() // the Inspector may write a catalog; keep it out of the tree
	cmd.Env = append(nt.env(), "HOME="+cmd.Dir, "MCP_TOOLS_DIR="+nt.mcpDir)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(redact(args), " "), err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// redact hides bearer tokens in logged command lines.
func redact(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "Authorization: Bearer ") {
			a = "Authorization: Bearer <redacted>"
		}
		out[i] = a
	}
	return out
}

// summary drops the suite's timestamped per-check lines (kept with -v).
func summary(s string) string {
	s = stripANSI(s)
	if testing.Verbose() {
		return s
	}
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "20") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// stripANSI removes terminal colour codes.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < '@' || s[j] > '~') {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mcpapp "picard.dev/mcpserver/app"
)

// childEnv marks the process that loadtest starts as the server: the same
// binary, serving instead of loading.
const childEnv = "PICARD_LOADTEST_SERVER"

// serveChild runs `mcpserver serve` with the configuration of the
// environment until SIGTERM or SIGINT.
func serveChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return mcpapp.Main(ctx, []string{"serve"}, mcpapp.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
}

// server is the mcpserver under load.
type server struct {
	url   string
	pid   int    // whose VmRSS to sample; 0: none
	kind  string // how it runs, for the report
	stop  func() error
	inRSS bool // pid is this process: RSS includes the clients
}

// loopbackOnly refuses URLs that do not point at this machine: loadtest is
// not a tool for loading other people's servers.
func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url: scheme must be http or https, not %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("-url: no host")
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("-url: %s is not a loopback address", host)
		}
		return nil
	}
	if !strings.EqualFold(host, "localhost") {
		return fmt.Errorf("-url: %s is not a loopback address (use 127.0.0.1, ::1 or localhost)", host)
	}
	return nil
}

// startServer starts a mcpserver on 127.0.0.1 with its data in a temporary
// directory, creates the accounts and one token per client with the admin
// commands, and returns the server with the tokens.
func startServer(ctx context.Context, o Options, setenv func(k, v string) error, logw io.Writer) (*server, []string, error) {
	dir, err := os.MkdirTemp("", "picard-loadtest-")
	if err != nil {
		return nil, nil, err
	}
	cleanupDir := func() { os.RemoveAll(dir) }
	port, err := freePort()
	if err != nil {
		cleanupDir()
		return nil, nil, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	vars := map[string]string{
		"MCP_SERVER_HOST":  "127.0.0.1",
		"MCP_SERVER_PORT":  strconv.Itoa(port),
		"MCP_ISSUER_URL":   base,
		"MCP_DATA_DIR":     filepath.Join(dir, "data"),
		"MCP_EMBEDDER":     "hash",
		"MCP_LOG_LEVEL":    "warn",
		"MCP_ENV":          "development",
		"MCP_RATE_LIMIT":   strconv.FormatFloat(o.RateLimit, 'f', -1, 64),
		"MCP_DATABASE_URL": o.DatabaseURL,
	}
	// The admin commands read their configuration from the environment,
	// and the child server inherits it.
	for k, v := range vars {
		if err := setenv(k, v); err != nil {
			cleanupDir()
			return nil, nil, err
		}
	}
	tokens, err := createAccounts(ctx, o, logw)
	if err != nil {
		cleanupDir()
		return nil, nil, err
	}

	var srv *server
	if o.InProcess {
		srv, err = startInProcess(ctx, vars, logw)
	} else {
		srv, err = startChild(ctx, logw)
	}
	if err != nil {
		cleanupDir()
		return nil, nil, err
	}
	srv.url = base
	if err := waitReady(ctx, base+"/readyz", 60*time.Second); err != nil {
		_ = srv.stop()
		cleanupDir()
		return nil, nil, err
	}
	stop := srv.stop
	srv.stop = func() error {
		defer cleanupDir()
		return stop()
	}
	return srv, tokens, nil
}

// createAccounts runs `users create` o.Users times and `tokens issue` once
// per client, round-robin over the users.
func createAccounts(ctx context.Context, o Options, logw io.Writer) ([]string, error) {
	nUsers := max(1, min(o.Users, o.Clients))
	emails := make([]string, nUsers)
	for i := range emails {
		emails[i] = fmt.Sprintf("loadtest-%d@example.com", i)
		pw := fmt.Sprintf("load test password %d\n", i)
		if _, err := admin(ctx, pw, logw, "users", "create", "--email", emails[i], "--password-stdin"); err != nil {
			return nil, err
		}
	}
	tokens := make([]string, o.Clients)
	for i := range tokens {
		tok, err := admin(ctx, "", logw, "tokens", "issue", "--email", emails[i%nUsers],
			"--scopes", "memories:read memories:write", "--ttl", "2h")
		if err != nil {
			return nil, err
		}
		tokens[i] = tok
	}
	return tokens, nil
}

// admin runs an mcpserver command in this process and returns what it
// printed on stdout.
func admin(ctx context.Context, stdin string, logw io.Writer, args ...string) (string, error) {
	var out, errb bytes.Buffer
	code := mcpapp.Main(ctx, args, mcpapp.IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb})
	if code != 0 {
		return "", fmt.Errorf("mcpserver %s %s: exit %d: %s", args[0], args[1], code, strings.TrimSpace(errb.String()))
	}
	// Warnings about generated development keys are expected; anything at
	// error level is worth showing.
	if s := errb.String(); strings.Contains(s, "level=ERROR") {
		fmt.Fprint(logw, s)
	}
	return strings.TrimSpace(out.String()), nil
}

// startChild runs this binary as the server, so that its VmRSS is the
// server's alone. The child is killed if this process dies.
func startChild(ctx context.Context, logw io.Writer) (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe) // #nosec G204 -- the load test's own server binary, built by it
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdout = logw
	cmd.Stderr = logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
				return nil
			}
			return err
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			return errors.New("server did not stop within 20 s of SIGTERM; killed")
		}
	}
	return &server{pid: cmd.Process.Pid, kind: "child process", stop: stop}, nil
}

// startInProcess runs the server in this process, as the end-to-end tests
// do.
func startInProcess(ctx context.Context, vars map[string]string, logw io.Writer) (*server, error) {
	cfg, err := mcpapp.LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a, err := mcpapp.New(runCtx, cfg, log)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	stop := func() error {
		cancel()
		err := <-done
		return errors.Join(err, a.Close())
	}
	return &server{pid: os.Getpid(), kind: "in process", stop: stop, inRSS: true}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(ctx context.Context, u string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("server at %s not ready: %v", u, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rssSampler records the peak resident set size of a process.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	peak     int64 // VmRSS bytes
	peakHeap int64 // Go runtime's mapped memory, in-process only
	samples  int
	err      error
}

func sampleRSS(pid int, every time.Duration, self bool) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
		for {
			rss, err := vmRSS(pid)
			s.mu.Lock()
			if err != nil {
				s.err = err
			} else {
				s.peak = max(s.peak, rss)
				s.samples++
			}
			if self {
				metrics.Read(sample)
				if sample[0].Value.Kind() == metrics.KindUint64 {
					s.peakHeap = max(s.peakHeap, int64(sample[0].Value.Uint64())) // #nosec G115 -- a heap size in bytes is far below 2^63
				}
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() (peak, peakGo int64, samples int, err error) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.peakHeap, s.samples, s.err
}

// vmRSS reads the resident set size of a process from /proc.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) < 1 {
				break
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

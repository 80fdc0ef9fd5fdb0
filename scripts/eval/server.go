package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	mcpapp "picard.dev/mcpserver/app"
)

// server is an mcpserver running in-process with an account for the
// evaluation.
type server struct {
	url, token string
	stop       func()
}

// evalEmail is the account the evaluation stores its memories under.
const evalEmail = "eval@picard.invalid"

// startServer starts mcpserver on a free port with a fresh data directory
// (SQLite there, or the database of dbURL), the local hashing embedder and
// no rate limit, and creates an account and a token with the server's own
// admin commands (`users create`, `tokens issue`), as an operator would.
// Those commands read the process environment, so it is set here; nothing
// else of the process uses it.
func startServer(ctx context.Context, dbURL string, logw io.Writer) (*server, error) {
	dir, err := os.MkdirTemp("", "picard-eval-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	port, err := freePort()
	if err != nil {
		cleanup()
		return nil, err
	}
	issuer := "http://127.0.0.1:" + strconv.Itoa(port)
	vars := map[string]string{
		"MCP_SERVER_HOST": "127.0.0.1", "MCP_SERVER_PORT": strconv.Itoa(port), "MCP_ISSUER_URL": issuer,
		"MCP_DATA_DIR": dir, "MCP_DATABASE_URL": dbURL, "MCP_EMBEDDER": "hash", "OPENAI_API_KEY": "",
		"MCP_RATE_LIMIT": "0", "MCP_LOG_LEVEL": "error", "MCP_ENV": "development",
		"MCP_ENCRYPTION_KEYS": "", "MCP_INDEX_KEY": "", "MCP_JWT_PRIVATE_KEY_FILE": "", "POSTGRES_HOST": "",
	}
	for k, v := range vars {
		if err := os.Setenv(k, v); err != nil {
			cleanup()
			return nil, err
		}
	}
	admin := func(stdin string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		if code := mcpapp.Main(ctx, args, mcpapp.IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}); code != 0 {
			return "", fmt.Errorf("mcpserver %s: exit %d: %s", strings.Join(args[:2], " "), code, strings.TrimSpace(errb.String()))
		}
		return strings.TrimSpace(out.String()), nil
	}
	if _, err := admin("evaluation-password\n", "users", "create", "--email", evalEmail, "--name", "Evaluation", "--password-stdin"); err != nil {
		cleanup()
		return nil, err
	}
	token, err := admin("", "tokens", "issue", "--email", evalEmail, "--scopes", "memories:read memories:write", "--ttl", "24h")
	if err != nil {
		cleanup()
		return nil, err
	}
	cfg, err := mcpapp.LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		cleanup()
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelError}))
	runCtx, cancel := context.WithCancel(ctx)
	a, err := mcpapp.New(runCtx, cfg, log)
	if err != nil {
		cancel()
		cleanup()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	stop := func() {
		cancel()
		<-done
		a.Close()
		cleanup()
	}
	if err := waitReady(ctx, issuer+"/readyz"); err != nil {
		stop()
		return nil, err
	}
	return &server{url: issuer, token: token, stop: stop}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 30s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

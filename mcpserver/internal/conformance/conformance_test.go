// Package conformance runs the official MCP conformance suite
// (npm @modelcontextprotocol/conformance, server scenarios) against our /mcp.
//
// The suite cannot send an Authorization header, so it runs against a test
// harness, in test code only: the real HTTP API (httpapi: Origin check,
// bearer middleware, body limits, deadlines; no rate limit) over the real
// registry, tools and a SQLite store, behind a front handler that adds a
// fixed bearer token which a test verifier maps to a fixed identity. The
// product binary never accepts a request without a verified token.
//
// Scenarios that do not apply to our server (they expect the reference
// server's fixture tools and prompts) are listed, with the reason, in
// testdata/expected-failures.yml; docs/TESTING.md repeats the reasons. The
// suite fails the run when a listed scenario starts to pass, so the list
// cannot go stale.
package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/embed"
	"picard.dev/mcpserver/internal/httpapi"
	"picard.dev/mcpserver/internal/mcp"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/persona"
	"picard.dev/mcpserver/internal/store"
	"picard.dev/mcpserver/internal/store/storetest"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
)

// harnessToken is the bearer token the front handler adds; only the test
// verifier knows it.
const harnessToken = "conformance-harness-token"

// fixedVerifier accepts harnessToken as one identity. Test code only.
type fixedVerifier struct{ id *auth.Identity }

func (v fixedVerifier) Verify(_ context.Context, tok string) (*auth.Identity, error) {
	if tok == harnessToken {
		return v.id, nil
	}
	return nil, auth.ErrInvalidToken
}

// tools locates Node 22 and the conformance CLI installed by
// scripts/install-node22.sh under the repository's .tools/. Missing tools
// skip the test with a reason, or fail it under CI=true.
func tools(t *testing.T) (node, cli string) {
	t.Helper()
	root, err := repoRoot()
	if err == nil {
		node = filepath.Join(root, ".tools", "node22", "node_modules", ".bin", "node")
		cli = filepath.Join(root, ".tools", "mcp", "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
		for _, p := range []string{node, cli} {
			if _, serr := os.Stat(p); serr != nil {
				err = serr
				break
			}
		}
	}
	if err != nil {
		msg := "MCP conformance suite not installed (run scripts/install-node22.sh): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node, cli
}

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

// harness serves the real /mcp of httpapi for one fixed identity, with a
// few memories of that user in the store. It returns the MCP endpoint URL.
func harness(t *testing.T, stateful bool) string {
	t.Helper()
	ctx := context.Background()
	db := storetest.SQLite(t, store.Options{})
	users := user.NewService(db.Users(), nil)
	memories := memory.NewService(db.Memories(), embed.NewHash(0), users, nil)
	u, err := users.Register(ctx, user.Registration{Email: "conformance@example.com", Name: "Conformance", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"The conformance suite runs against Picard.", "Picard stores memories for AI assistants."} {
		if _, err := memories.Create(ctx, u.ID, memory.Draft{Text: text, Permission: string(memory.Public)}); err != nil {
			t.Fatal(err)
		}
	}
	registry := mcp.NewRegistry(mcp.Deps{
		Memories: memories,
		Users:    users,
		Personas: persona.New(persona.Options{Searcher: memories, Users: users, Settings: db.PersonaSettings()}),
		Activity: db.Activity(),
		Metrics:  mcp.NewMetrics(prometheus.NewRegistry()),
		Timeout:  30 * time.Second,
	})
	t.Cleanup(registry.Close)

	id := &auth.Identity{
		UserID: u.ID, Email: u.Email, ClientID: "conformance-harness",
		Scopes: []string{shared.ScopeRead, shared.ScopeWrite}, TokenID: uuid.NewString(),
	}
	// The listener comes first: the Origin check needs the URL.
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	api, err := httpapi.New(httpapi.Options{
		Registry:            registry,
		Verifier:            fixedVerifier{id},
		IssuerURL:           base,
		ResourceMetadataURL: base + "/.well-known/oauth-protected-resource/mcp",
		AllowedOrigins:      []string{base},
		Stateful:            stateful,
		Version:             "conformance",
		Gatherer:            prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	e := echo.New()
	api.Mount(e)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+harnessToken)
		}
		e.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return base + "/mcp"
}

// TestServerScenarios runs every server scenario of the suite (--suite all:
// the pending ones too), in the default (stateless) mode and in the
// stateful mode, each against its own baseline.
func TestServerScenarios(t *testing.T) {
	node, cli := tools(t)
	for _, mode := range []struct {
		name     string
		stateful bool
		baseline string
	}{
		{"stateless", false, "expected-failures.yml"},
		{"stateful", true, "expected-failures-stateful.yml"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			url := harness(t, mode.stateful)
			baseline, err := filepath.Abs(filepath.Join("testdata", mode.baseline))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			// CONFORMANCE_RESULTS_DIR keeps the suite's checks.json files.
			out := t.TempDir()
			if d := os.Getenv("CONFORMANCE_RESULTS_DIR"); d != "" {
				out = filepath.Join(d, mode.name)
				if err := os.MkdirAll(out, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.CommandContext(ctx, node, cli, "server", "--url", url, "--suite", "all", "--expected-failures", baseline, "-o", out)
			cmd.Dir = out
			var buf bytes.Buffer
			cmd.Stdout, cmd.Stderr = &buf, &buf
			start := time.Now()
			err = cmd.Run()
			t.Logf("conformance server --url %s (%s, %s):\n%s", url, mode.name, time.Since(start).Round(time.Millisecond), summary(buf.String()))
			if err != nil {
				t.Fatalf("conformance suite: %v (unexpected failures, or a baseline entry that now passes; full output above)", err)
			}
		})
	}
}

// summary keeps the suite's per-scenario result lines and its summary,
// without the colour codes.
func summary(s string) string {
	s = stripANSI(s)
	if testing.Verbose() {
		return s
	}
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "20") { // per-check timestamped lines
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

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

package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
	"picard.dev/shared/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testIssuer is the public URL every test instance claims; instances listen
// on ports of their own, as behind a load balancer.
const testIssuer = "http://127.0.0.1:8001"

// running is an App serving in the background.
type running struct {
	*App
	cancel context.CancelFunc
	done   chan error
}

// start builds and runs an App with vars over a test configuration (port
// 0, hash embedder, the given data directory for the generated dev keys, so
// that instances sharing it share keys). It is stopped when t ends unless
// the test stops it first.
func start(t *testing.T, dataDir string, vars map[string]string) *running {
	t.Helper()
	env := map[string]string{
		"MCP_SERVER_HOST": "127.0.0.1",
		"MCP_SERVER_PORT": "0",
		"MCP_ISSUER_URL":  testIssuer,
		"MCP_DATA_DIR":    dataDir,
		"MCP_EMBEDDER":    "hash",
		"MCP_LOG_LEVEL":   "warn",
	}
	for k, v := range vars {
		env[k] = v
	}
	cfg, err := LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	r := &running{App: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the App down and closes it, once.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return within 30 s of its context ending")
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// account creates a user and a personal access token for it.
func (r *running) account(t *testing.T, email string, admin bool, scopes ...string) (uuid.UUID, string) {
	t.Helper()
	ctx := context.Background()
	u, err := r.core.users.Register(ctx, user.Registration{Email: email, Password: "correct horse battery staple", Admin: admin})
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	if len(scopes) == 0 {
		scopes = []string{shared.ScopeRead, shared.ScopeWrite}
	}
	tok, err := r.oauth.IssuePersonalToken(ctx, u.ID, scopes, time.Hour)
	if err != nil {
		t.Fatalf("token for %s: %v", email, err)
	}
	return u.ID, tok
}

// reply is an HTTP answer, read in full.
type reply struct {
	status int
	body   []byte
	err    error // transport failure
}

// apiError decodes the contract's error body.
func (r reply) apiError() shared.APIError {
	var b shared.ErrorBody
	_ = json.Unmarshal(r.body, &b)
	return b.Error
}

var client = &http.Client{Timeout: 30 * time.Second}

// callTool posts to /api/tools.
func callTool(base, token, tool string, data any) reply {
	b, _ := json.Marshal(map[string]any{"tool": tool, "data": data})
	return post(base+"/api/tools", token, b, nil)
}

// callMCP sends one tools/call to /mcp, stateless, without a session.
func callMCP(base, token, tool string, args any) reply {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": args}})
	return post(base+"/mcp", token, b, map[string]string{
		"Accept":               "application/json, text/event-stream",
		"Mcp-Protocol-Version": "2025-06-18",
	})
}

func post(url, token string, body []byte, header map[string]string) reply {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return reply{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(req)
}

func get(url string) reply {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return reply{err: err}
	}
	return do(req)
}

func do(req *http.Request) reply {
	res, err := client.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, body: b, err: err}
}

// mcpToolError returns the text of an MCP tool error in a /mcp answer
// (JSON or one SSE event), or "" when the call did not fail as a tool.
func mcpToolError(body []byte) string {
	s := string(body)
	if i := strings.Index(s, "data: "); i >= 0 {
		s = strings.TrimSpace(s[i+len("data: "):])
	}
	var msg struct {
		Result struct {
			IsError bool `json:"isError"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	}
	if json.Unmarshal([]byte(s), &msg) != nil || !msg.Result.IsError || len(msg.Result.Content) == 0 {
		return ""
	}
	return msg.Result.Content[0].Text
}

// eventually polls cond every 20 ms for at most d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting until %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

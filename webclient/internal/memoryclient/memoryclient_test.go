package memoryclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/shared"
	"picard.dev/webclient/internal/memoryclient"
	"picard.dev/webclient/internal/testserver"
)

func token(tok string) memoryclient.TokenFunc {
	return func(context.Context) (string, error) { return tok, nil }
}

func TestToolsAndErrors(t *testing.T) {
	fake := testserver.New()
	defer fake.Close()
	uid := fake.User("a@example.com", "A")
	ctx := context.Background()
	c := memoryclient.New(fake.URL+"/mcp", memoryclient.Options{Timeout: 5 * time.Second})
	rw := c.With(token(fake.IssueToken(uid, "memories:read memories:write")))

	m, err := rw.SubmitMemory(ctx, shared.NewMemory{Text: "hello", Tags: []string{"t"}})
	if err != nil || m.ID == "" || m.OwnerID != uid || m.Permission != "private" {
		t.Fatalf("submit: %+v %v", m, err)
	}
	got, err := rw.GetMemory(ctx, m.ID)
	if err != nil || got.Text != "hello" {
		t.Fatalf("get: %+v %v", got, err)
	}
	page, err := rw.GetMemories(ctx, shared.GetMemoriesArgs{Tags: []string{"t"}})
	if err != nil || len(page.Memories) != 1 {
		t.Fatalf("list: %+v %v", page, err)
	}
	res, err := rw.QueryMemory(ctx, shared.QueryMemoryArgs{Query: "hello"})
	if err != nil || len(res) != 1 || res[0].Score <= 0 {
		t.Fatalf("query: %+v %v", res, err)
	}

	if _, err := rw.GetMemory(ctx, "8f3e1b7a-0000-4000-8000-000000000000"); !errors.Is(err, memoryclient.ErrNotFound) {
		t.Errorf("missing memory: %v", err)
	}
	if err := rw.DeleteMemory(ctx, "8f3e1b7a-0000-4000-8000-000000000000"); !errors.Is(err, memoryclient.ErrNotFound) {
		t.Errorf("delete missing: %v", err)
	}
	var te *memoryclient.ToolError
	if _, err := rw.SubmitMemory(ctx, shared.NewMemory{Text: " "}); !errors.Is(err, memoryclient.ErrInvalid) || !errors.As(err, &te) || te.Message == "" {
		t.Errorf("invalid input: %v", err)
	}

	ro := c.With(token(fake.IssueToken(uid, "memories:read")))
	if _, err := ro.SubmitMemory(ctx, shared.NewMemory{Text: "x"}); !errors.Is(err, memoryclient.ErrInsufficientScope) {
		t.Errorf("read-only write: %v", err)
	}
	if _, err := c.With(token("garbage")).GetMemories(ctx, shared.GetMemoriesArgs{}); !errors.Is(err, memoryclient.ErrUnauthorized) {
		t.Errorf("bad token: %v", err)
	}
	sentinel := errors.New("no token")
	if _, err := c.With(func(context.Context) (string, error) { return "", sentinel }).GetMemories(ctx, shared.GetMemoriesArgs{}); !errors.Is(err, sentinel) {
		t.Errorf("token error not passed through: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	fake := testserver.New()
	uid := fake.User("a@example.com", "A")
	tok := fake.IssueToken(uid, "memories:read")
	c := memoryclient.New(fake.URL+"/mcp", memoryclient.Options{Timeout: 300 * time.Millisecond})

	// The fake answers only after an hour, so the call can end only through
	// the client's own timeout; the guard below detects a hang, it does not
	// measure speed.
	fake.Delay.Store(int64(time.Hour))
	done := make(chan error, 1)
	go func() {
		_, err := c.With(token(tok)).GetMemories(context.Background(), shared.GetMemoriesArgs{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, memoryclient.ErrUnavailable) {
			t.Errorf("slow server: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the timeout did not bound the call")
	}
	fake.Delay.Store(0)
	fake.Down.Store(true)
	if _, err := c.With(token(tok)).GetMemories(context.Background(), shared.GetMemoriesArgs{}); !errors.Is(err, memoryclient.ErrUnavailable) {
		t.Errorf("503: %v", err)
	}
	url := fake.URL
	fake.Close()
	if _, err := memoryclient.New(url+"/mcp", memoryclient.Options{}).With(token(tok)).GetMemories(context.Background(), shared.GetMemoriesArgs{}); !errors.Is(err, memoryclient.ErrUnavailable) {
		t.Errorf("refused connection: %v", err)
	}
}

func TestToolErrorFormats(t *testing.T) {
	// Servers may report codes as "code: message" text or as the /api body.
	for _, tt := range []struct {
		text string
		want error
	}{
		{"not_found: no such memory", memoryclient.ErrNotFound},
		{`{"error":{"code":"invalid_argument","message":"text too long"}}`, memoryclient.ErrInvalid},
		{`{"code":"permission_denied","message":"no"}`, memoryclient.ErrForbidden},
		{"this tool requires scope memories:write", memoryclient.ErrInsufficientScope},
	} {
		srv := mcp.NewServer(&mcp.Implementation{Name: "x"}, nil)
		srv.AddTool(&mcp.Tool{Name: shared.ToolGetMemories, InputSchema: map[string]any{"type": "object"}}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: tt.text}}}, nil
		})
		fake := testserver.NewWith(srv)
		_, err := memoryclient.New(fake.URL+"/mcp", memoryclient.Options{}).With(token("t")).GetMemories(context.Background(), shared.GetMemoriesArgs{})
		if !errors.Is(err, tt.want) {
			t.Errorf("%q: %v, want %v", tt.text, err, tt.want)
		}
		fake.Close()
	}
}

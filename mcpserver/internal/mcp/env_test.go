package mcp_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/google/uuid"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/embed"
	"picard.dev/mcpserver/internal/mcp"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/persona"
	"picard.dev/mcpserver/internal/store"
	"picard.dev/mcpserver/internal/store/storetest"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
)

// env is a real stack over a SQLite database in a temp dir: store, memory
// service with the hash embedder, user service, persona service, registry.
type env struct {
	t        testing.TB
	db       *store.DB
	mem      *memory.Service
	users    *user.Service
	reg      *mcp.Registry
	metrics  *prometheus.Registry
	alice    *user.User
	bob      *user.User
	carol    *user.User
	admin    *user.User
	personas *persona.Service
}

func newEnv(t testing.TB, opts ...func(*mcp.Deps)) *env {
	t.Helper()
	db := storetest.SQLite(t, store.Options{IndexKey: []byte("mcp tests index key of 32 bytes!")})
	e := &env{t: t, db: db, metrics: prometheus.NewRegistry()}
	e.users = user.NewService(db.Users(), nil)
	e.mem = memory.NewService(db.Memories(), embed.NewHash(0), e.users, nil)
	e.personas = persona.New(persona.Options{Searcher: e.mem, Users: e.users, Settings: db.PersonaSettings()})
	d := mcp.Deps{
		Memories: e.mem, Users: e.users, Personas: e.personas, Activity: db.Activity(),
		Metrics: mcp.NewMetrics(e.metrics),
	}
	for _, o := range opts {
		o(&d)
	}
	e.reg = mcp.NewRegistry(d)
	t.Cleanup(e.reg.Close)
	e.alice = e.register("alice@example.com", "Alice", false)
	e.bob = e.register("bob@example.com", "Bob", false)
	e.carol = e.register("carol@example.com", "Carol", false)
	e.admin = e.register("admin@example.com", "Admin", true)
	return e
}

func (e *env) register(email, name string, admin bool) *user.User {
	e.t.Helper()
	u, err := e.users.Register(context.Background(), user.Registration{Email: email, Name: name, Password: "correct horse battery", Admin: admin})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// identity is a token of u with the given scopes (all three by default).
func identity(u *user.User, scopes ...string) *auth.Identity {
	if len(scopes) == 0 {
		scopes = shared.AllScopes
	}
	return &auth.Identity{UserID: u.ID, Email: u.Email, Admin: u.Admin, ClientID: "test-client", Scopes: scopes, TokenID: uuid.NewString()}
}

// client connects an MCP client to a fresh server over in-memory
// transports, as id.
func (e *env) client(id *auth.Identity, opts ...mcp.ServerOptions) *sdk.ClientSession {
	e.t.Helper()
	var o mcp.ServerOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	srv := e.reg.NewServer(o)
	st, ct := sdk.NewInMemoryTransports()
	ctx := context.Background()
	if id != nil {
		ctx = auth.WithIdentity(ctx, id)
	}
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { ss.Close() })
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and decodes its structured result into out; it fails
// the test on a tool error.
func call[T any](t *testing.T, cs *sdk.ClientSession, tool string, args any) T {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		t.Fatalf("%s: tool error: %s", tool, text(res))
	}
	var out T
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: decode %s: %v", tool, b, err)
	}
	checkOutput(t, cs, tool, b)
	if text(res) == "" {
		t.Errorf("%s: no text content", tool)
	}
	return out
}

// callErr calls a tool that must fail, and returns the error text.
func callErr(t *testing.T, cs *sdk.ClientSession, tool string, args any) string {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", tool, err)
	}
	if !res.IsError {
		b, _ := json.Marshal(res.StructuredContent)
		t.Fatalf("%s: want a tool error, got %s", tool, b)
	}
	return text(res)
}

func text(res *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// count returns how many memories owner has, expired ones included.
func (e *env) count(owner uuid.UUID) int {
	e.t.Helper()
	n := 0
	q := memory.ListQuery{Viewer: owner, Owner: owner, IncludeExpired: true, Limit: memory.MaxListLimit}
	for {
		p, err := e.mem.List(context.Background(), q)
		if err != nil {
			e.t.Fatal(err)
		}
		n += len(p.Memories)
		if p.Next == nil {
			return n
		}
		q.After = p.Next
	}
}

// checkOutput validates a tool's structured result against the output
// schema the server lists for it: the server does not re-validate its own
// results on every call, so the tests do.
func checkOutput(t *testing.T, cs *sdk.ClientSession, tool string, result []byte) {
	t.Helper()
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	for _, tl := range tools.Tools {
		if tl.Name != tool {
			continue
		}
		if tl.OutputSchema == nil {
			t.Fatalf("%s: no output schema", tool)
		}
		sb, _ := json.Marshal(tl.OutputSchema)
		var schema jsonschema.Schema
		if err := json.Unmarshal(sb, &schema); err != nil {
			t.Fatalf("%s: output schema: %v", tool, err)
		}
		resolved, err := schema.Resolve(nil)
		if err != nil {
			t.Fatalf("%s: resolve output schema: %v", tool, err)
		}
		var v any
		if err := json.Unmarshal(result, &v); err != nil {
			t.Fatal(err)
		}
		if err := resolved.Validate(v); err != nil {
			t.Errorf("%s: result does not match its output schema: %v\n%s", tool, err, result)
		}
		return
	}
	t.Fatalf("%s: not listed", tool)
}

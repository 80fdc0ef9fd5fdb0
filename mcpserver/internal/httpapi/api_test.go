package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
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

const resourceMetadata = "http://localhost:8001/.well-known/oauth-protected-resource/mcp"

// tokens is a test Verifier: a fixed map from token to identity. It lives in
// test code only; the product verifies tokens with the oauth package.
type tokens map[string]*auth.Identity

func (t tokens) Verify(_ context.Context, tok string) (*auth.Identity, error) {
	if id, ok := t[tok]; ok {
		return id, nil
	}
	return nil, auth.ErrInvalidToken
}

type server struct {
	url     string
	tokens  tokens
	reg     *mcp.Registry
	metrics *prometheus.Registry
	alice   *user.User
	bob     *user.User
}

func newServer(tb testing.TB, mod ...func(*httpapi.Options)) *server {
	tb.Helper()
	ctx := context.Background()
	db := storetest.SQLite(tb, store.Options{})
	users := user.NewService(db.Users(), nil)
	mem := memory.NewService(db.Memories(), embed.NewHash(0), users, nil)
	s := &server{tokens: tokens{}, metrics: prometheus.NewRegistry()}
	s.reg = mcp.NewRegistry(mcp.Deps{
		Memories: mem, Users: users, Activity: db.Activity(), Metrics: mcp.NewMetrics(s.metrics),
		Personas: persona.New(persona.Options{Searcher: mem, Users: users, Settings: db.PersonaSettings()}),
	})
	tb.Cleanup(s.reg.Close)
	reg := func(email string) *user.User {
		u, err := users.Register(ctx, user.Registration{Email: email, Password: "long enough password"})
		if err != nil {
			tb.Fatal(err)
		}
		return u
	}
	s.alice, s.bob = reg("alice@example.com"), reg("bob@example.com")
	s.tokens["alice"] = &auth.Identity{UserID: s.alice.ID, Scopes: []string{shared.ScopeRead, shared.ScopeWrite}, TokenID: "t-alice", ClientID: "c"}
	s.tokens["alice-ro"] = &auth.Identity{UserID: s.alice.ID, Scopes: []string{shared.ScopeRead}, TokenID: "t-alice-ro", ClientID: "c"}
	s.tokens["bob"] = &auth.Identity{UserID: s.bob.ID, Scopes: []string{shared.ScopeRead, shared.ScopeWrite}, TokenID: "t-bob", ClientID: "c"}
	o := httpapi.Options{
		Registry: s.reg, Verifier: s.tokens, IssuerURL: "http://localhost:8001", ResourceMetadataURL: resourceMetadata,
		AllowedOrigins: []string{"http://localhost:8000"}, RequestTimeout: 10 * time.Second, Version: "test",
		Ping: db.Ping, Gatherer: s.metrics,
	}
	for _, m := range mod {
		m(&o)
	}
	api, err := httpapi.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(api.Close)
	e := echo.New()
	api.Mount(e)
	ts := httptest.NewServer(e)
	tb.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

// bearer adds a token to every request of an HTTP client.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func (s *server) mcpClient(tb testing.TB, token string) *sdk.ClientSession {
	tb.Helper()
	tr := &sdk.StreamableClientTransport{Endpoint: s.url + "/mcp", HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}}}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "1"}, nil).Connect(context.Background(), tr, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cs.Close() })
	return cs
}

type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

func (s *server) post(tb testing.TB, path, token string, body []byte, hdr ...string) apiResponse {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return apiResponse{res.StatusCode, res.Header, b}
}

func (s *server) api(tb testing.TB, token, tool string, data any) apiResponse {
	b, _ := json.Marshal(map[string]any{"tool": tool, "data": data})
	return s.post(tb, "/api/tools", token, b)
}

func apiError(tb testing.TB, r apiResponse) shared.APIError {
	tb.Helper()
	var eb shared.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error.Code == "" {
		tb.Fatalf("not an error body (%d): %s", r.status, r.body)
	}
	return eb.Error
}

func mcpCall(t *testing.T, cs *sdk.ClientSession, tool string, args any) (json.RawMessage, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		var b strings.Builder
		for _, c := range res.Content {
			b.WriteString(c.(*sdk.TextContent).Text)
		}
		return nil, b.String()
	}
	raw, _ := json.Marshal(res.StructuredContent)
	return raw, ""
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// TestEndToEnd drives /mcp with the go-sdk client and /api/tools with plain
// HTTP, with bearer tokens, and compares the results.
func TestEndToEnd(t *testing.T) {
	s := newServer(t)
	cs := s.mcpClient(t, "alice")

	viaMCP, errText := mcpCall(t, cs, shared.ToolSubmitMemory, map[string]any{"text": "tea over coffee", "permission": "public", "tags": []string{"drinks"}})
	if errText != "" {
		t.Fatal(errText)
	}
	r := s.api(t, "alice", shared.ToolSubmitMemory, map[string]any{"text": "green tea at noon", "tags": []string{"drinks"}})
	if r.status != http.StatusOK {
		t.Fatalf("api submit: %d %s", r.status, r.body)
	}
	var tr shared.ToolResponse
	json.Unmarshal(r.body, &tr)
	var m1, m2 shared.Memory
	json.Unmarshal(viaMCP, &m1)
	json.Unmarshal(tr.Result, &m2)
	if m1.OwnerID != s.alice.ID.String() || m2.OwnerID != s.alice.ID.String() || m2.Text != "green tea at noon" {
		t.Fatalf("submitted %+v / %+v", m1, m2)
	}

	// Read tools give identical results on both transports.
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{shared.ToolGetMemories, map[string]any{"tags": []string{"drinks"}}},
		{shared.ToolRetrieveMemories, map[string]any{"limit": 1}},
		{shared.ToolQueryMemory, map[string]any{"query": "tea", "limit": 5}},
		{shared.ToolListPersonas, map[string]any{}},
		{shared.ToolQueryUser, map[string]any{"user_id": s.alice.ID.String(), "prompt": "tea"}},
	} {
		viaMCP, errText := mcpCall(t, cs, c.tool, c.args)
		if errText != "" {
			t.Fatalf("%s over MCP: %s", c.tool, errText)
		}
		r := s.api(t, "alice", c.tool, c.args)
		var tr shared.ToolResponse
		if r.status != http.StatusOK || json.Unmarshal(r.body, &tr) != nil {
			t.Fatalf("%s over /api: %d %s", c.tool, r.status, r.body)
		}
		if !sameJSON(viaMCP, tr.Result) {
			t.Errorf("%s differs:\n mcp %s\n api %s", c.tool, viaMCP, tr.Result)
		}
	}

	// Errors read the same too.
	_, mcpErr := mcpCall(t, cs, shared.ToolUpdateMemory, map[string]any{"memory_id": uuid.NewString(), "text": "x"})
	r = s.api(t, "alice", shared.ToolUpdateMemory, map[string]any{"memory_id": uuid.NewString(), "text": "x"})
	ae := apiError(t, r)
	if r.status != http.StatusNotFound || ae.Code != shared.CodeNotFound || !strings.HasPrefix(mcpErr, "not_found: memory_id: no memory") {
		t.Fatalf("not found: %d %+v / %q", r.status, ae, mcpErr)
	}
	r = s.api(t, "alice", shared.ToolSubmitMemory, map[string]any{"text": ""})
	_, mcpErr = mcpCall(t, cs, shared.ToolSubmitMemory, map[string]any{"text": ""})
	if ae := apiError(t, r); r.status != http.StatusBadRequest || mcpErr != ae.Code+": "+ae.Message {
		t.Fatalf("invalid: %d %+v / %q", r.status, ae, mcpErr)
	}

	// Bob cannot see alice's private memory on either transport.
	bobMCP := s.mcpClient(t, "bob")
	_, mcpErr = mcpCall(t, bobMCP, shared.ToolDeleteMemory, map[string]any{"memory_id": m2.ID})
	r = s.api(t, "bob", shared.ToolDeleteMemory, map[string]any{"memory_id": m2.ID})
	if r.status != http.StatusNotFound || !strings.HasPrefix(mcpErr, "not_found:") {
		t.Fatalf("bob deletes alice's memory: %d %s / %q", r.status, r.body, mcpErr)
	}
	if _, err := bobMCP.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: "memories://" + m2.ID}); err == nil {
		t.Fatal("bob reads alice's private memory as a resource")
	}
	res, err := cs.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: "memories://" + m2.ID})
	if err != nil || !strings.Contains(res.Contents[0].Text, "green tea at noon") {
		t.Fatalf("alice reads her memory: %v", err)
	}
}

func TestAuthentication(t *testing.T) {
	s := newServer(t)
	init := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`)
	for _, path := range []string{"/mcp", "/api/tools"} {
		body := init
		if path == "/api/tools" {
			body = []byte(`{"tool":"get_memories","data":{}}`)
		}
		r := s.post(t, path, "", body)
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Bearer resource_metadata="`+resourceMetadata+`"` {
			t.Errorf("%s without token: %d %q", path, r.status, r.header.Get("WWW-Authenticate"))
		}
		if apiError(t, r).Code != shared.CodeUnauthenticated {
			t.Errorf("%s: %s", path, r.body)
		}
		r = s.post(t, path, "forged", body)
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Bearer resource_metadata="`+resourceMetadata+`", error="invalid_token"` {
			t.Errorf("%s with a bad token: %d %q", path, r.status, r.header.Get("WWW-Authenticate"))
		}
	}

	// A write tool with a read-only token: 403 with the scope challenge on
	// /api, a tool error naming the scope on /mcp; nothing stored.
	r := s.api(t, "alice-ro", shared.ToolSubmitMemory, map[string]any{"text": "x"})
	want := `Bearer error="insufficient_scope", scope="memories:write", resource_metadata="` + resourceMetadata + `"`
	if r.status != http.StatusForbidden || r.header.Get("WWW-Authenticate") != want || apiError(t, r).Code != shared.CodeInsufficientScope {
		t.Fatalf("read-only write on /api: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
	_, errText := mcpCall(t, s.mcpClient(t, "alice-ro"), shared.ToolSubmitMemory, map[string]any{"text": "x"})
	if !strings.Contains(errText, "insufficient_scope") || !strings.Contains(errText, shared.ScopeWrite) {
		t.Fatalf("read-only write on /mcp: %q", errText)
	}
	r = s.api(t, "alice", shared.ToolGetMemories, map[string]any{})
	var page struct{ Result shared.MemoryPage }
	json.Unmarshal(r.body, &page)
	if len(page.Result.Memories) != 0 {
		t.Fatal("a refused write stored a memory")
	}
}

func TestRequestChecks(t *testing.T) {
	s := newServer(t, func(o *httpapi.Options) { o.RateLimit = 1 })

	// Origin: a foreign browser origin is refused; an allowed one gets CORS.
	r := s.post(t, "/api/tools", "alice", []byte(`{"tool":"get_memories","data":{}}`), "Origin", "https://evil.example")
	if r.status != http.StatusForbidden || apiError(t, r).Code != shared.CodePermissionDenied {
		t.Fatalf("foreign origin: %d %s", r.status, r.body)
	}
	r = s.post(t, "/mcp", "alice", []byte(`{}`), "Origin", "https://evil.example")
	if r.status != http.StatusForbidden {
		t.Fatalf("foreign origin on /mcp: %d", r.status)
	}
	r = s.post(t, "/api/tools", "bob", []byte(`{"tool":"get_memories","data":{}}`), "Origin", "http://localhost:8000")
	if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "http://localhost:8000" {
		t.Fatalf("allowed origin: %d %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}

	// Rate limit: 1 rps, burst 2, per token; bob has one request left.
	r = s.api(t, "bob", shared.ToolGetMemories, map[string]any{})
	if r.status != http.StatusOK {
		t.Fatalf("second request: %d", r.status)
	}
	r = s.api(t, "bob", shared.ToolGetMemories, map[string]any{})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || apiError(t, r).Code != shared.CodeRateLimited {
		t.Fatalf("third request: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	// Another token is not affected.
	if r = s.api(t, "alice", shared.ToolGetMemories, map[string]any{}); r.status != http.StatusOK {
		t.Fatalf("other token limited: %d", r.status)
	}
}

func TestBodyLimitsAndBadRequests(t *testing.T) {
	s := newServer(t)
	big := strings.Repeat("x", 30000)
	mems := make([]any, 40) // ~1.2 MB of JSON
	for i := range mems {
		mems[i] = map[string]any{"text": big}
	}
	// 1.2 MB to a single-memory tool: too large; to the batch tool: fine.
	r := s.api(t, "alice", shared.ToolSubmitMemory, map[string]any{"text": "x", "metadata": map[string]any{"pad": strings.Repeat("y", 1200000)}})
	if r.status != http.StatusRequestEntityTooLarge || apiError(t, r).Code != shared.CodeTooLarge {
		t.Fatalf("1.2 MB submit_memory: %d %s", r.status, r.body)
	}
	r = s.api(t, "alice", shared.ToolSubmitMemories, map[string]any{"memories": mems})
	if r.status != http.StatusOK {
		t.Fatalf("1.2 MB submit_memories: %d %.200s", r.status, r.body)
	}
	r = s.api(t, "alice", shared.ToolSubmitMemories, map[string]any{"memories": []any{map[string]any{"text": strings.Repeat("z", 11<<20)}}})
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("11 MB batch: %d", r.status)
	}
	// Same limits on /mcp.
	call := func(tool string, args any) []byte {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": tool, "arguments": args}})
		return b
	}
	r = s.post(t, "/mcp", "alice", call(shared.ToolSubmitMemory, map[string]any{"text": strings.Repeat("y", 1200000)}))
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("1.2 MB submit_memory over /mcp: %d %.200s", r.status, r.body)
	}
	r = s.post(t, "/mcp", "alice", call(shared.ToolSubmitMemories, map[string]any{"memories": mems}), "Mcp-Protocol-Version", "2025-06-18")
	if r.status == http.StatusRequestEntityTooLarge {
		t.Fatalf("1.2 MB submit_memories over /mcp refused")
	}

	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`not json`, 400, shared.CodeInvalidArgument},
		{`{"data":{}}`, 400, shared.CodeInvalidArgument},
		{`{"tool":"get_memories","data":{},"extra":1}`, 400, shared.CodeInvalidArgument},
		{`{"tool":"launch_rockets","data":{}}`, 404, shared.CodeNotFound},
		{`{"tool":"get_memories","data":[1]}`, 400, shared.CodeInvalidArgument},
		{`{"tool":"get_memories"}`, 200, ""},
	} {
		r := s.post(t, "/api/tools", "alice", []byte(c.body))
		if r.status != c.status || (c.code != "" && apiError(t, r).Code != c.code) {
			t.Errorf("%s: %d %s", c.body, r.status, r.body)
		}
	}
}

func TestOpenAPIAndOperations(t *testing.T) {
	s := newServer(t)
	res, err := http.Get(s.url + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %s", doc.OpenAPI)
	}
	op := doc.Paths.Find("/api/tools").Post
	examples := op.RequestBody.Value.Content.Get("application/json").Examples
	for _, tl := range s.reg.Tools() {
		name := httpapiPascal(tl.Name)
		for _, suffix := range []string{"Input", "Output", "Request", "Response"} {
			if doc.Components.Schemas[name+suffix] == nil {
				t.Errorf("no schema %s%s", name, suffix)
			}
		}
		if examples[tl.Name] == nil {
			t.Errorf("no example for %s", tl.Name)
		}
		// Every example validates against its tool's input schema.
		ex, _ := json.Marshal(examples[tl.Name].Value.Value.(map[string]any)["data"])
		var v any
		json.Unmarshal(ex, &v)
		if err := doc.Components.Schemas[name+"Input"].Value.VisitJSON(v); err != nil {
			t.Errorf("example of %s does not match its schema: %v", tl.Name, err)
		}
	}
	for _, p := range []string{"/mcp", "/token", "/authorize", "/register", "/revoke", "/introspect", "/healthz", "/readyz", "/.well-known/oauth-protected-resource/mcp"} {
		if doc.Paths.Find(p) == nil {
			t.Errorf("path %s missing", p)
		}
	}

	get := func(path string) (int, string, string) {
		res, err := http.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), string(b)
	}
	if st, _, body := get("/docs"); st != 200 || !strings.Contains(body, "/docs/swagger-ui-bundle.js") || strings.Contains(body, "cdn") {
		t.Errorf("/docs: %d", st)
	}
	if st, ct, _ := get("/docs/swagger-ui-bundle.js"); st != 200 || !strings.Contains(ct, "javascript") {
		t.Errorf("swagger bundle: %d %s", st, ct)
	}
	if st, _, _ := get("/docs/../../etc/passwd"); st == 200 {
		t.Error("docs serves arbitrary paths")
	}
	if st, _, _ := get("/healthz"); st != 200 {
		t.Errorf("/healthz %d", st)
	}
	if st, _, _ := get("/readyz"); st != 200 {
		t.Errorf("/readyz %d", st)
	}
	s.api(t, "alice", shared.ToolGetMemories, map[string]any{})
	if st, _, body := get("/metrics"); st != 200 || !strings.Contains(body, `picard_tool_calls_total{outcome="ok",tool="get_memories"} 1`) {
		t.Errorf("/metrics: %d %s", st, body)
	}
}

func TestReadyzFailing(t *testing.T) {
	s := newServer(t, func(o *httpapi.Options) { o.Ping = func(context.Context) error { return errors.New("db down") } })
	res, err := http.Get(s.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(b), "db down") {
		t.Fatalf("/readyz: %d %s", res.StatusCode, b)
	}
}

func httpapiPascal(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, "")
}

var _ = fmt.Sprint

package app

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/embed"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/shared"
)

// fakeProvider is an OpenAI-compatible embeddings API on loopback, backed
// by the local hash embedder, that can be switched down (it answers 400, an
// error the client does not retry) or made to hold requests until
// released.
type fakeProvider struct {
	*httptest.Server
	hash    *embed.Hash
	down    atomic.Bool
	hold    atomic.Bool   // hold the next request until release is closed
	held    chan struct{} // receives when a request is being held
	release chan struct{}
}

func newFakeProvider(t *testing.T) *fakeProvider {
	f := &fakeProvider{hash: embed.NewHash(64), held: make(chan struct{}, 1), release: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProvider) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/embeddings" {
		http.NotFound(w, r)
		return
	}
	if f.hold.CompareAndSwap(true, false) {
		f.held <- struct{}{}
		select {
		case <-f.release:
		case <-time.After(30 * time.Second):
		}
	}
	if f.down.Load() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":{"message":"the provider is down for this test","type":"invalid_request_error"}}`))
		return
	}
	var req struct {
		Input []string `json:"input"`
		Model string   `json:"model"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	vecs, _ := f.hash.Embed(r.Context(), req.Input)
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	out := struct {
		Object string         `json:"object"`
		Data   []item         `json:"data"`
		Model  string         `json:"model"`
		Usage  map[string]int `json:"usage"`
	}{Object: "list", Model: req.Model, Usage: map[string]int{"prompt_tokens": 1, "total_tokens": 1}}
	for i, v := range vecs {
		out.Data = append(out.Data, item{Object: "embedding", Index: i, Embedding: v})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// vars configures mcpserver to embed with the fake provider.
func (f *fakeProvider) vars() map[string]string {
	return map[string]string{
		"MCP_EMBEDDER":        "openai",
		"OPENAI_API_KEY":      "test-key",
		"OPENAI_BASE_URL":     f.URL + "/v1",
		"MCP_EMBEDDING_MODEL": "fake-embedding-model",
	}
}

func memoryID(t *testing.T, r reply) uuid.UUID {
	t.Helper()
	var out struct {
		Result struct {
			ID uuid.UUID `json:"id"`
		} `json:"result"`
	}
	if r.err != nil || r.status != http.StatusOK || json.Unmarshal(r.body, &out) != nil || out.Result.ID == uuid.Nil {
		t.Fatalf("want a stored memory, got %d %v: %.300s", r.status, r.err, r.body)
	}
	return out.Result.ID
}

// TestWritesSurviveAProviderOutage runs the real server with an embedding
// provider that fails: writes are acknowledged, the pending gauge counts
// them, and the background worker started by Run makes every one of them
// searchable by vector once the provider answers again.
func TestWritesSurviveAProviderOutage(t *testing.T) {
	p := newFakeProvider(t)
	a := start(t, t.TempDir(), p.vars())
	owner, token := a.account(t, "writer@example.com", false)

	p.down.Store(true)
	texts := map[uuid.UUID]string{}
	for _, text := range []string{"the spare key is under the blue flowerpot", "grandmother's recipe uses cardamom", "the wifi password is on the fridge"} {
		id := memoryID(t, callTool(a.URL(), token, shared.ToolSubmitMemory, map[string]any{"text": text}))
		texts[id] = text
	}
	eventually(t, 5*time.Second, "/metrics counts the pending memories", func() bool {
		return strings.Contains(string(get(a.URL()+"/metrics").body), "picard_embeddings_pending 3")
	})

	p.down.Store(false)
	eventually(t, 30*time.Second, "the worker has embedded every pending memory", func() bool {
		n, err := a.core.memories.CountPending(context.Background())
		return err == nil && n == 0
	})
	for id, text := range texts {
		res, err := a.core.memories.Search(context.Background(), memory.SearchRequest{Viewer: owner, Query: text, Mode: "vector", Limit: 1})
		if err != nil || len(res) == 0 || res[0].Memory.ID != id {
			t.Errorf("vector search for %q after recovery: %v, %v", text, res, err)
		}
	}
}

// TestGracefulShutdown cancels Run while a tool call is in flight: the
// listener closes at once (new connections are refused), the call still
// completes and its memory is stored, and only then does Run return.
func TestGracefulShutdown(t *testing.T) {
	p := newFakeProvider(t)
	a := start(t, t.TempDir(), p.vars())
	owner, token := a.account(t, "slow@example.com", false)

	p.hold.Store(true)
	inflight := make(chan reply, 1)
	go func() {
		inflight <- callTool(a.URL(), token, shared.ToolSubmitMemory, map[string]any{"text": "written while the server stops"})
	}()
	select {
	case <-p.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the tool call never reached the embedding provider")
	}

	a.cancel() // SIGTERM: cmd/mcpserver cancels Run's context
	a.cancel = nil
	eventually(t, 5*time.Second, "new connections are refused", func() bool {
		c, err := net.DialTimeout("tcp", a.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-a.done:
		t.Fatalf("Run returned (%v) with a request in flight", err)
	case r := <-inflight:
		t.Fatalf("the in-flight call finished before it was released: %d %s", r.status, r.body)
	case <-time.After(200 * time.Millisecond):
	}

	close(p.release)
	var id uuid.UUID
	select {
	case r := <-inflight:
		id = memoryID(t, r)
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight call did not complete")
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the last request finished")
	}
	if m, err := a.core.memories.Get(context.Background(), owner, id, false); err != nil || m.Text != "written while the server stops" {
		t.Errorf("the memory written during shutdown: %v, %v", m, err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

package embed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// embeddingsRequest is the body of POST /embeddings as OpenAI documents it.
type embeddingsRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
	Dimensions     *int     `json:"dimensions"`
}

// fakeOpenAI is an httptest server speaking the OpenAI embeddings API. Each
// input "t<k>" gets the vector (k+1, 1, 0, …) of length dim — not unit
// length, so that the client's normalisation shows — and the data array is
// shuffled so that only the index field gives the order.
type fakeOpenAI struct {
	t    *testing.T
	srv  *httptest.Server
	dim  int
	path string // where the endpoint lives, e.g. /v1/embeddings

	mu       sync.Mutex
	requests []embeddingsRequest
	auth     []string
	calls    atomic.Int32

	// fail, if set, may answer a call (1-based) itself and return true.
	fail func(w http.ResponseWriter, r *http.Request, call int) bool
}

func newFakeOpenAI(t *testing.T, path string, dim int) *fakeOpenAI {
	f := &fakeOpenAI{t: t, dim: dim, path: path}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOpenAI) serve(w http.ResponseWriter, r *http.Request) {
	call := int(f.calls.Add(1))
	if r.Method != http.MethodPost || r.URL.Path != f.path {
		writeAPIError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
		return
	}
	if f.fail != nil && f.fail(w, r, call) {
		return
	}
	var req embeddingsRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()

	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	data := make([]item, len(req.Input))
	for i, in := range req.Input {
		k, err := strconv.Atoi(strings.TrimPrefix(in, "t"))
		if err != nil {
			k = len(in)
		}
		v := make([]float64, f.dim)
		v[0], v[1] = float64(k+1), 1
		data[i] = item{Object: "embedding", Index: i, Embedding: v}
	}
	rng := rand.New(rand.NewPCG(uint64(call), 7))
	rng.Shuffle(len(data), func(i, j int) { data[i], data[j] = data[j], data[i] })
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list",
		"data":   data,
		"model":  req.Model,
		"usage":  map[string]int{"prompt_tokens": len(req.Input), "total_tokens": len(req.Input)},
	})
}

func writeAPIError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": nil},
	})
}

// testConfig points at f with fast back-off.
func (f *fakeOpenAI) config() OpenAIConfig {
	return OpenAIConfig{
		APIKey:     "sk-test",
		BaseURL:    f.srv.URL + strings.TrimSuffix(f.path, "/embeddings"),
		Model:      "test-model",
		Dim:        f.dim,
		MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond,
		HTTPClient: f.srv.Client(),
	}
}

func mustOpenAI(t *testing.T, cfg OpenAIConfig) *OpenAI {
	t.Helper()
	o, err := NewOpenAI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func inputs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "t" + strconv.Itoa(i)
	}
	return out
}

// checkVectors verifies that vs[i] is the unit vector of input "t<i>".
func checkVectors(t *testing.T, vs [][]float32, n, dim int) {
	t.Helper()
	if len(vs) != n {
		t.Fatalf("%d vectors for %d inputs", len(vs), n)
	}
	for i, v := range vs {
		if len(v) != dim {
			t.Fatalf("vector %d has %d dimensions, want %d", i, len(v), dim)
		}
		if n := norm2(v); math.Abs(n-1) > 1e-5 {
			t.Fatalf("vector %d has norm %v", i, n)
		}
		if k := float64(v[0] / v[1]); math.Abs(k-float64(i+1)) > 1e-3*float64(i+1) {
			t.Fatalf("vector %d belongs to input %v: order lost", i, k-1)
		}
	}
}

func TestOpenAIRequestShape(t *testing.T) {
	f := newFakeOpenAI(t, "/v1/embeddings", 4)
	o := mustOpenAI(t, f.config())
	vs, err := o.Embed(context.Background(), inputs(3))
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, vs, 3, 4)
	if len(f.requests) != 1 {
		t.Fatalf("%d requests, want 1", len(f.requests))
	}
	req := f.requests[0]
	if req.Model != "test-model" || strings.Join(req.Input, ",") != "t0,t1,t2" || req.EncodingFormat != "float" {
		t.Errorf("request = %+v", req)
	}
	if req.Dimensions != nil {
		t.Errorf("dimensions sent for a non-OpenAI model: %d", *req.Dimensions)
	}
	if f.auth[0] != "Bearer sk-test" {
		t.Errorf("Authorization = %q", f.auth[0])
	}
	if o.Name() != "openai/test-model/4" || o.Dim() != 4 {
		t.Errorf("Name, Dim = %q, %d", o.Name(), o.Dim())
	}
}

func TestOpenAIBaseURLHonoured(t *testing.T) {
	f := newFakeOpenAI(t, "/gateway/openai/v1/embeddings", 3)
	cfg := f.config()
	if !strings.HasSuffix(cfg.BaseURL, "/gateway/openai/v1") {
		t.Fatalf("base URL %q", cfg.BaseURL)
	}
	if _, err := mustOpenAI(t, cfg).Embed(context.Background(), inputs(1)); err != nil {
		t.Fatalf("embedding through %s: %v", cfg.BaseURL, err)
	}
	// The wrong base URL reaches the 404 route, proving the path is used as given.
	cfg.BaseURL = f.srv.URL + "/v1"
	_, err := mustOpenAI(t, cfg).Embed(context.Background(), inputs(1))
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Fatalf("err = %v, want a 404 APIError", err)
	}
}

func TestOpenAIBatching(t *testing.T) {
	f := newFakeOpenAI(t, "/v1/embeddings", 3)
	o := mustOpenAI(t, f.config())
	const n = 2*MaxBatch + 88
	vs, err := o.Embed(context.Background(), inputs(n))
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, vs, n, 3)
	var sizes []int
	for _, r := range f.requests {
		sizes = append(sizes, len(r.Input))
	}
	if fmt.Sprint(sizes) != fmt.Sprint([]int{MaxBatch, MaxBatch, 88}) {
		t.Errorf("batch sizes = %v", sizes)
	}

	// A smaller configured batch size is honoured; a larger one is capped.
	f.requests = nil
	cfg := f.config()
	cfg.BatchSize = 10
	if _, err := mustOpenAI(t, cfg).Embed(context.Background(), inputs(25)); err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 3 {
		t.Errorf("batch size 10: %d requests for 25 inputs, want 3", len(f.requests))
	}
	f.requests = nil
	cfg.BatchSize = 10000
	if _, err := mustOpenAI(t, cfg).Embed(context.Background(), inputs(300)); err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 2 || len(f.requests[0].Input) != MaxBatch {
		t.Errorf("batch size 10000 not capped at %d", MaxBatch)
	}
}

func TestOpenAIRetryThenSuccess(t *testing.T) {
	f := newFakeOpenAI(t, "/v1/embeddings", 3)
	f.fail = func(w http.ResponseWriter, r *http.Request, call int) bool {
		switch call {
		case 1:
			w.Header().Set("Retry-After-Ms", "2")
			writeAPIError(w, http.StatusTooManyRequests, "Rate limit reached")
			return true
		case 2:
			writeAPIError(w, http.StatusServiceUnavailable, "overloaded")
			return true
		}
		return false
	}
	vs, err := mustOpenAI(t, f.config()).Embed(context.Background(), inputs(5))
	if err != nil {
		t.Fatalf("Embed after 429 and 503: %v", err)
	}
	checkVectors(t, vs, 5, 3)
	if got := f.calls.Load(); got != 3 {
		t.Errorf("%d calls, want 3", got)
	}
}

func TestOpenAIRetryNetworkError(t *testing.T) {
	f := newFakeOpenAI(t, "/v1/embeddings", 3)
	f.fail = func(w http.ResponseWriter, r *http.Request, call int) bool {
		if call > 1 {
			return false
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return true
		}
		_ = conn.Close() // the client sees the connection drop
		return true
	}
	vs, err := mustOpenAI(t, f.config()).Embed(context.Background(), inputs(2))
	if err != nil {
		t.Fatalf("Embed after a dropped connection: %v", err)
	}
	checkVectors(t, vs, 2, 3)
}

func TestOpenAIRetryAttemptTimeout(t *testing.T) {
	f := newFakeOpenAI(t, "/v1/embeddings", 3)
	f.fail = func(w http.ResponseWriter, r *http.Request, call int) bool {
		if call > 1 {
			return false
		}
		// Read the body so that the server notices when the client hangs up,
		// then hang until it gives up on this attempt.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return true
	}
	cfg := f.config()
	cfg.Timeout = 100 * time.Millisecond
	if _, err := mustOpenAI(t, cfg).Embed(context.Background(), inputs(2)); err != nil {
		t.Fatalf("Embed after a timed-out attempt: %v", err)
	}
	if got := f.calls.Load(); got != 2 {
		t.Errorf("%d calls, want 2", got)
	}
}

func TestOpenAIServerErrorExhaustsRetries(t *testing.T) {
	f := newFakeOpenAI(t, "/v1/embeddings", 3)
	f.fail = func(w http.ResponseWriter, r *http.Request, call int) bool {
		writeAPIError(w, http.StatusInternalServerError, "The server had an error")
		return true
	}
	cfg := f.config()
	cfg.MaxRetries = 2
	_, err := mustOpenAI(t, cfg).Embed(context.Background(), inputs(2))
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	if apiErr.StatusCode != 500 || apiErr.Attempts != 3 || f.calls.Load() != 3 {
		t.Errorf("status %d after %d attempts (%d calls), want 500 after 3", apiErr.StatusCode, apiErr.Attempts, f.calls.Load())
	}
	want := "embed: openai: 500 Internal Server Error: The server had an error (after 3 attempts)"
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}

	// Retries disabled: one attempt.
	f.calls.Store(0)
	cfg.MaxRetries = -1
	if _, err := mustOpenAI(t, cfg).Embed(context.Background(), inputs(1)); err == nil || f.calls.Load() != 1 {
		t.Errorf("MaxRetries -1: err %v after %d calls, want an error after 1", err, f.calls.Load())
	}
}

func TestOpenAIClientErrorsAreImmediate(t *testing.T) {
	for _, tc := range []struct {
		code int
		msg  string
		want string
	}{
		{400, "'input' is invalid", "embed: openai: 400 Bad Request: 'input' is invalid"},
		{401, "Incorrect API key provided", "embed: openai: 401 Unauthorized: Incorrect API key provided"},
		{404, "The model 'nope' does not exist", "embed: openai: 404 Not Found: The model 'nope' does not exist"},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			f := newFakeOpenAI(t, "/v1/embeddings", 3)
			f.fail = func(w http.ResponseWriter, r *http.Request, call int) bool {
				writeAPIError(w, tc.code, tc.msg)
				return true
			}
			_, err := mustOpenAI(t, f.config()).Embed(context.Background(), inputs(1))
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v\nwant  %s", err, tc.want)
			}
			if f.calls.Load() != 1 {
				t.Errorf("%d calls, want 1 (no retry)", f.calls.Load())
			}
		})
	}

	// A body that is not an OpenAI error object still yields a readable message.
	f := newFakeOpenAI(t, "/v1/embeddings", 3)
	f.fail = func(w http.ResponseWriter, r *http.Request, call int) bool {
		http.Error(w, "forbidden by gateway policy", http.StatusForbidden)
		return true
	}
	_, err := mustOpenAI(t, f.config()).Embed(context.Background(), inputs(1))
	if err == nil || err.Error() != "embed: openai: 403 Forbidden: forbidden by gateway policy" {
		t.Errorf("plain-text error body: %v", err)
	}
}

func TestOpenAIDimension(t *testing.T) {
	f := newFakeOpenAI(t, "/v1/embeddings", 5)

	// Unknown model, no configured dimension: learnt from the first response.
	cfg := f.config()
	cfg.Dim = 0
	o := mustOpenAI(t, cfg)
	if o.Dim() != 0 {
		t.Fatalf("Dim before any call = %d, want 0", o.Dim())
	}
	if d, err := o.Probe(context.Background()); err != nil || d != 5 {
		t.Fatalf("Probe = %d, %v; want 5", d, err)
	}
	if o.Name() != "openai/test-model/5" {
		t.Errorf("Name = %q", o.Name())
	}

	// Configured dimension that the server does not produce: a clear error.
	cfg.Dim = 7
	_, err := mustOpenAI(t, cfg).Embed(context.Background(), inputs(1))
	if err == nil || !strings.Contains(err.Error(), "returned 5-dimensional vectors, expected 7") {
		t.Errorf("dimension mismatch: %v", err)
	}

	// The default model's dimension is known without a call.
	def := mustOpenAI(t, OpenAIConfig{})
	if def.Dim() != 1536 || def.Name() != "openai/text-embedding-3-small/1536" {
		t.Errorf("default: Dim %d, Name %q", def.Dim(), def.Name())
	}
	// Shortened text-embedding-3 vectors are requested with "dimensions".
	f3 := newFakeOpenAI(t, "/v1/embeddings", 256)
	cfg3 := f3.config()
	cfg3.Model, cfg3.Dim = "text-embedding-3-small", 256
	if _, err := mustOpenAI(t, cfg3).Embed(context.Background(), inputs(1)); err != nil {
		t.Fatal(err)
	}
	if d := f3.requests[0].Dimensions; d == nil || *d != 256 {
		t.Errorf("dimensions parameter = %v, want 256", d)
	}
	if _, err := NewOpenAI(OpenAIConfig{Model: "text-embedding-3-small", Dim: 4096}); err == nil {
		t.Error("a dimension above the model's was accepted")
	}
}

func TestOpenAIEmptyTexts(t *testing.T) {
	f := newFakeOpenAI(t, "/v1/embeddings", 3)
	o := mustOpenAI(t, f.config())
	vs, err := o.Embed(context.Background(), []string{"t0", "", "  ", "t3"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.requests[0].Input; strings.Join(got, ",") != "t0,t3" {
		t.Errorf("sent %q, want only the non-empty texts", got)
	}
	for i, v := range vs {
		if len(v) != 3 {
			t.Fatalf("vector %d has %d dimensions", i, len(v))
		}
	}
	if norm2(vs[1]) != 0 || norm2(vs[2]) != 0 || math.Abs(norm2(vs[3])-1) > 1e-5 {
		t.Error("empty texts should get zero vectors, others unit vectors")
	}
	if v0, v3 := vs[0][0]/vs[0][1], vs[3][0]/vs[3][1]; math.Abs(float64(v0)-1) > 1e-3 || math.Abs(float64(v3)-4) > 1e-3 {
		t.Error("order lost around skipped empty texts")
	}
	if vs, err := o.Embed(context.Background(), nil); err != nil || len(vs) != 0 {
		t.Errorf("Embed(nil) = %v, %v", vs, err)
	}
}

func TestOpenAIContextCancelDuringBackoff(t *testing.T) {
	f := newFakeOpenAI(t, "/v1/embeddings", 3)
	f.fail = func(w http.ResponseWriter, r *http.Request, call int) bool {
		writeAPIError(w, http.StatusTooManyRequests, "slow down")
		return true
	}
	cfg := f.config()
	cfg.MinBackoff, cfg.MaxBackoff = time.Minute, time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := mustOpenAI(t, cfg).Embed(ctx, inputs(1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("Embed did not stop waiting when the context ended")
	}
}

func TestOpenAIConfigValidation(t *testing.T) {
	for _, base := range []string{"localhost:11434", "ftp://example.com/v1", "://bad"} {
		if _, err := NewOpenAI(OpenAIConfig{BaseURL: base}); err == nil {
			t.Errorf("base URL %q accepted", base)
		}
	}
	if _, err := NewOpenAI(OpenAIConfig{Dim: -1}); err == nil {
		t.Error("negative dimension accepted")
	}
}

func TestOpenAIBackoff(t *testing.T) {
	o := mustOpenAI(t, OpenAIConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	for attempt, ceiling := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		ceiling *= time.Millisecond
		for range 20 {
			d := o.backoff(attempt, 0)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
	if d := o.backoff(0, 300*time.Millisecond); d != 300*time.Millisecond {
		t.Errorf("Retry-After ignored: %v", d)
	}
	if d := o.backoff(0, time.Hour); d != time.Second {
		t.Errorf("Retry-After not capped: %v", d)
	}
	if d := o.backoff(100, 0); d < 500*time.Millisecond || d > time.Second {
		t.Errorf("large attempt overflowed: %v", d)
	}
}

func TestOpenAIUsesOnlyItsConfig(t *testing.T) {
	// The SDK reads OPENAI_* variables by default; the embedder must not, so
	// that configuration has one source.
	t.Setenv("OPENAI_API_KEY", "sk-from-env")
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
	f := newFakeOpenAI(t, "/v1/embeddings", 3)
	cfg := f.config()
	cfg.APIKey = "" // a local server without authentication
	if _, err := mustOpenAI(t, cfg).Embed(context.Background(), inputs(1)); err != nil {
		t.Fatal(err)
	}
	if got := f.auth[0]; got != "" {
		t.Errorf("Authorization = %q, want none", got)
	}
}

package embed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Defaults of [OpenAIConfig].
const (
	DefaultOpenAIBaseURL = "https://api.openai.com/v1"
	DefaultOpenAIModel   = "text-embedding-3-small"
	DefaultOpenAITimeout = 30 * time.Second
	DefaultMaxRetries    = 3
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 20 * time.Second

	// MaxBatch is the largest number of inputs sent in one request.
	MaxBatch = 256
)

// OpenAIConfig configures an [OpenAI] embedder. Zero fields take the
// defaults named on each.
type OpenAIConfig struct {
	// APIKey is sent as a bearer token. It may be empty for local servers
	// (Ollama, vLLM) that do not check it.
	APIKey string
	// BaseURL of an OpenAI-compatible API, including its version path, e.g.
	// "http://localhost:11434/v1" for Ollama. Default DefaultOpenAIBaseURL.
	BaseURL string
	// Model name. Default DefaultOpenAIModel.
	Model string
	// Dim is the vector dimension. Zero means: the model's native dimension
	// when the model is a known OpenAI model, otherwise whatever the first
	// response returns. For text-embedding-3 models a Dim below the native one
	// is requested from the API (the "dimensions" parameter); for other
	// models it is only checked against every response.
	Dim int
	// Timeout bounds each HTTP attempt. Default DefaultOpenAITimeout.
	Timeout time.Duration
	// MaxRetries is the number of retries after a first failed attempt on
	// 429, 5xx, time-outs and network errors. Zero means DefaultMaxRetries;
	// a negative value disables retries.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential back-off between
	// attempts (with jitter); a server's Retry-After is honoured up to
	// MaxBackoff. Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// BatchSize is the number of inputs per request, at most (and by
	// default) MaxBatch.
	BatchSize int
	// HTTPClient replaces the SDK's default client (tests, proxies).
	HTTPClient *http.Client
}

// nativeDims are the output sizes of OpenAI's own embedding models.
func nativeDim(model string) int {
	switch model {
	case openai.EmbeddingModelTextEmbedding3Small, openai.EmbeddingModelTextEmbeddingAda002:
		return 1536
	case openai.EmbeddingModelTextEmbedding3Large:
		return 3072
	}
	return 0
}

// OpenAI embeds texts with any server that speaks the OpenAI embeddings API
// (POST {base}/embeddings). Requests are batched, retried with exponential
// back-off and jitter on rate limits, server errors and network failures, and
// the returned vectors are scaled to unit length. It is safe for concurrent
// use.
type OpenAI struct {
	svc        openai.EmbeddingService
	model      string
	sendDims   bool // send the "dimensions" parameter
	dim        atomic.Int64
	maxRetries int
	minBackoff time.Duration
	maxBackoff time.Duration
	timeout    time.Duration
	batch      int
}

// NewOpenAI returns an OpenAI embedder. It does not contact the server; see
// [OpenAI.Probe] to learn an unknown dimension at start-up.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.Model == "" {
		cfg.Model = DefaultOpenAIModel
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultOpenAIBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("embed: openai: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.Dim < 0 {
		return nil, fmt.Errorf("embed: openai: negative dimension %d", cfg.Dim)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultOpenAITimeout
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.BatchSize <= 0 || cfg.BatchSize > MaxBatch {
		cfg.BatchSize = MaxBatch
	}

	native := nativeDim(cfg.Model)
	dim := cfg.Dim
	if dim == 0 {
		dim = native
	}
	if native > 0 && dim > native {
		return nil, fmt.Errorf("embed: openai: model %s has at most %d dimensions, %d configured", cfg.Model, native, dim)
	}

	opts := []option.RequestOption{
		option.WithBaseURL(cfg.BaseURL),
		option.WithAPIKey(cfg.APIKey),
		// Retries are ours (see embedBatch), so that they are tested and
		// bounded by our back-off settings.
		option.WithMaxRetries(0),
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	}
	client := openai.NewClient(opts...)

	o := &OpenAI{
		svc:        client.Embeddings,
		model:      cfg.Model,
		sendDims:   strings.HasPrefix(cfg.Model, "text-embedding-3") && dim != native,
		maxRetries: cfg.MaxRetries,
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
		timeout:    cfg.Timeout,
		batch:      cfg.BatchSize,
	}
	o.dim.Store(int64(dim))
	return o, nil
}

// Dim returns the vector dimension, or 0 while it is still unknown (a model
// not known to this package, no Dim configured, nothing embedded yet).
func (o *OpenAI) Dim() int { return int(o.dim.Load()) }

// Name identifies the model and dimension, e.g.
// "openai/text-embedding-3-small/1536".
func (o *OpenAI) Name() string {
	return "openai/" + o.model + "/" + strconv.Itoa(o.Dim())
}

// Probe makes sure the dimension is known, embedding a short text if it is
// not, and returns it.
func (o *OpenAI) Probe(ctx context.Context) (int, error) {
	if d := o.Dim(); d > 0 {
		return d, nil
	}
	if _, err := o.embedBatch(ctx, []string{"dimension probe"}); err != nil {
		return 0, err
	}
	return o.Dim(), nil
}

// Embed returns one unit-length vector per text, in the order of texts. The
// API rejects empty input, so a text that is empty or only white space is not
// sent and gets the all-zero vector (cosine 0 with anything), as with [Hash].
func (o *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	var (
		batch []string
		where []int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		vecs, err := o.embedBatch(ctx, batch)
		if err != nil {
			return err
		}
		for i, v := range vecs {
			out[where[i]] = v
		}
		batch, where = batch[:0], where[:0]
		return nil
	}
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			continue
		}
		batch = append(batch, t)
		where = append(where, i)
		if len(batch) == o.batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}

	for i := range out {
		if out[i] == nil {
			d, err := o.Probe(ctx)
			if err != nil {
				return nil, err
			}
			out[i] = make([]float32, d)
		}
	}
	return out, nil
}

// embedBatch sends one request (with retries) and returns the vectors in
// input order.
func (o *OpenAI) embedBatch(ctx context.Context, batch []string) ([][]float32, error) {
	params := openai.EmbeddingNewParams{
		Model:          o.model,
		Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: batch},
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
	}
	if o.sendDims {
		params.Dimensions = openai.Int(int64(o.Dim()))
	}

	var resp *openai.CreateEmbeddingResponse
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, o.timeout)
		r, err := o.svc.New(actx, params)
		attemptTimedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
		cancel()
		if err == nil {
			resp = r
			break
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("embed: openai: %w", ctxErr)
		}
		retryable, retryAfter := classify(err, attemptTimedOut)
		if !retryable || attempt >= o.maxRetries {
			return nil, wrapErr(err, attempt+1, attemptTimedOut, o.timeout)
		}
		if err := sleep(ctx, o.backoff(attempt, retryAfter)); err != nil {
			return nil, fmt.Errorf("embed: openai: %w", err)
		}
	}
	return o.collect(resp, len(batch))
}

// collect checks a response and returns its vectors, unit length, ordered by
// their index field.
func (o *OpenAI) collect(resp *openai.CreateEmbeddingResponse, n int) ([][]float32, error) {
	if len(resp.Data) != n {
		return nil, fmt.Errorf("embed: openai: %d embeddings returned for %d inputs", len(resp.Data), n)
	}
	out := make([][]float32, n)
	want := o.Dim()
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= int64(n) || out[d.Index] != nil {
			return nil, fmt.Errorf("embed: openai: invalid or repeated embedding index %d for %d inputs", d.Index, n)
		}
		got := len(d.Embedding)
		if got == 0 {
			return nil, fmt.Errorf("embed: openai: empty embedding at index %d", d.Index)
		}
		if want == 0 {
			// First response of a model of unknown size: it decides.
			o.dim.CompareAndSwap(0, int64(got))
			want = o.Dim()
		}
		if got != want {
			return nil, fmt.Errorf("embed: openai: model %s returned %d-dimensional vectors, expected %d", o.model, got, want)
		}
		out[d.Index] = unit(d.Embedding)
	}
	return out, nil
}

// unit converts to float32 scaled to unit length (a zero vector stays zero).
func unit(v []float64) []float32 {
	var sum float64
	for _, x := range v {
		sum += x * x
	}
	inv := 1.0
	if sum > 0 {
		inv = 1 / math.Sqrt(sum)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x * inv)
	}
	return out
}

// classify reports whether err is worth retrying and any delay the server
// asked for.
func classify(err error, attemptTimedOut bool) (retryable bool, retryAfter time.Duration) {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		switch code := apiErr.StatusCode; {
		case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code >= 500:
			return true, parseRetryAfter(apiErr.Response)
		}
		return false, 0
	}
	if attemptTimedOut {
		return true, 0
	}
	var netErr net.Error
	var urlErr *url.Error
	if errors.As(err, &netErr) || errors.As(err, &urlErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true, 0
	}
	return false, 0
}

// parseRetryAfter reads Retry-After-Ms or Retry-After (seconds or an HTTP
// date); 0 when absent or unreadable.
func parseRetryAfter(res *http.Response) time.Duration {
	if res == nil {
		return 0
	}
	if v := res.Header.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && !math.IsInf(ms, 0) {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := res.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && !math.IsInf(s, 0) {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// backoff returns the wait before retry number attempt+1: the server's
// Retry-After if given, else MinBackoff·2^attempt with equal jitter (between
// half and all of it), never more than MaxBackoff.
func (o *OpenAI) backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, o.maxBackoff)
	}
	d := o.maxBackoff
	if attempt < 30 {
		d = min(o.minBackoff<<attempt, o.maxBackoff)
	}
	half := d / 2
	return half + rand.N(half+1) // #nosec G404 -- retry jitter, not a secret
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// APIError is returned when the embeddings endpoint answers with an error
// status (after any retries). It unwraps to the SDK's *openai.Error.
type APIError struct {
	// StatusCode is the HTTP status of the last attempt.
	StatusCode int
	// Message is the server's error message, or the start of the body when
	// it sent no OpenAI error object.
	Message string
	// Attempts is the number of requests made.
	Attempts int
	err      error
}

// Error reads like "embed: openai: 401 Unauthorized: Incorrect API key".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("embed: openai: ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the SDK error.
func (e *APIError) Unwrap() error { return e.err }

// wrapErr turns the final error of a request into a clear one.
func wrapErr(err error, attempts int, timedOut bool, timeout time.Duration) error {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		msg := apiErr.Message
		if msg == "" && apiErr.Response != nil && apiErr.Response.Body != nil {
			body, _ := io.ReadAll(io.LimitReader(apiErr.Response.Body, 200))
			msg = strings.Join(strings.Fields(string(body)), " ")
		}
		return &APIError{StatusCode: apiErr.StatusCode, Message: msg, Attempts: attempts, err: err}
	}
	suffix := ""
	if attempts > 1 {
		suffix = fmt.Sprintf(" (after %d attempts)", attempts)
	}
	if timedOut {
		return fmt.Errorf("embed: openai: request timed out after %s%s: %w", timeout, suffix, err)
	}
	return fmt.Errorf("embed: openai: request failed%s: %w", suffix, err)
}

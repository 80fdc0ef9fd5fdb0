package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/shared"
)

// Options configure a run.
type Options struct {
	URL       string   // a running server; empty starts one
	Tokens    []string // with URL: used round-robin by the clients
	ServerPID int      // with URL: whose RSS to report; 0: none

	Clients  int
	Duration time.Duration
	MaxOps   int
	Seed     int    // memories per client stored before the timed run
	RandSeed uint64 // of the workload's choices

	// For a started server.
	Users       int
	RateLimit   float64
	DatabaseURL string
	InProcess   bool
}

func (o *Options) check() error {
	switch {
	case o.Clients < 1 || o.Clients > maxClients:
		return fmt.Errorf("-clients must be between 1 and %d", maxClients)
	case o.Duration <= 0 || o.Duration > maxDuration:
		return fmt.Errorf("-duration must be positive and at most %s", maxDuration)
	case o.MaxOps < 1 || o.MaxOps > maxOps:
		return fmt.Errorf("-max-ops must be between 1 and %d", maxOps)
	case o.Seed < 0 || o.Seed > maxBatch:
		return fmt.Errorf("-seed-memories must be between 0 and %d", maxBatch)
	case o.RateLimit < 0:
		return errors.New("-rate-limit must not be negative")
	}
	if o.URL != "" {
		return loopbackOnly(o.URL)
	}
	return nil
}

// Operation kinds of the mixed workload.
const (
	opQuery  = "query_memory"
	opSubmit = "submit_memory"
	opUpdate = "update_memory"
	opDelete = "delete_memory"
)

// maxBatch is the contract's limit of submit_memories.
const maxBatch = 1000

// Deliberate is the error kind that does not count as a failure: the
// per-token rate limit answering 429.
const Deliberate = "rate_limited (HTTP 429)"

// Run starts (or connects to) the server, runs the workload, verifies the
// acknowledged writes and stops what it started. setenv sets the
// configuration the admin commands and a child server read.
func Run(ctx context.Context, o Options, setenv func(k, v string) error, logw io.Writer) (*Report, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	srv := &server{url: strings.TrimRight(o.URL, "/"), pid: o.ServerPID, kind: "external", stop: func() error { return nil }}
	tokens := o.Tokens
	if o.URL == "" {
		var err error
		fmt.Fprintf(logw, "loadtest: starting a server and creating %d accounts and %d tokens\n", max(1, min(o.Users, o.Clients)), o.Clients)
		srv, tokens, err = startServer(ctx, o, setenv, logw)
		if err != nil {
			return nil, err
		}
	}
	rep, err := runAgainst(ctx, o, srv, tokens, logw)
	if serr := srv.stop(); serr != nil {
		err = errors.Join(err, fmt.Errorf("stop server: %w", serr))
	}
	return rep, err
}

func runAgainst(ctx context.Context, o Options, srv *server, tokens []string, logw io.Writer) (*Report, error) {
	transport := &http.Transport{
		MaxIdleConns:        o.Clients + 16,
		MaxIdleConnsPerHost: o.Clients + 16,
		IdleConnTimeout:     time.Minute,
	}
	defer transport.CloseIdleConnections()
	clients := make([]*client, o.Clients)
	errs := make(chan error, o.Clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16) // connect a few at a time
	for i := range clients {
		c := &client{
			n: i, token: tokens[i%len(tokens)],
			rng:  rand.New(rand.NewPCG(o.RandSeed, uint64(i))), // #nosec G404 -- a seeded, reproducible load pattern, not a secret
			live: map[string]string{}, gone: map[string]bool{}, unsure: map[string]bool{},
		}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := c.connect(ctx, srv.url, transport); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeAll(clients)
		return nil, err
	}
	defer closeAll(clients)

	// Seed: each client stores a batch with submit_memories, so that
	// queries, updates and deletes have something to work on.
	if o.Seed > 0 {
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				c.seed(ctx, o.Seed)
			}()
		}
		wg.Wait()
	}
	for _, c := range clients {
		if c.seedErr != nil {
			return nil, fmt.Errorf("seeding client %d: %w", c.n, c.seedErr)
		}
	}

	var rss *rssSampler
	if srv.pid > 0 {
		rss = sampleRSS(srv.pid, 250*time.Millisecond, srv.inRSS)
	}
	fmt.Fprintf(logw, "loadtest: %d clients for %s against %s (%s)\n", o.Clients, o.Duration, srv.url, srv.kind)
	var budget atomic.Int64
	budget.Store(int64(o.MaxOps))
	start := time.Now()
	end := start.Add(o.Duration)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil && budget.Add(-1) >= 0 {
				c.step(ctx)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	rep := newReport(o, srv, elapsed, clients)
	if rss != nil {
		peak, peakGo, n, err := rss.finish()
		rep.ServerRSS = &RSS{PID: srv.pid, PeakBytes: peak, Samples: n, IncludesClients: srv.inRSS, PeakGoBytes: peakGo}
		if err != nil && n == 0 {
			rep.ServerRSS.Error = err.Error()
		}
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	rep.Verification = verify(ctx, clients)
	return rep, nil
}

func closeAll(clients []*client) {
	for _, c := range clients {
		if c != nil && c.cs != nil {
			c.cs.Close()
		}
	}
}

// client is one MCP client with its own token, the memories it wrote and
// the outcome of every call.
type client struct {
	n     int
	token string
	cs    *sdk.ClientSession
	rng   *rand.Rand

	// Acknowledged state: live memories with their latest acknowledged
	// text, deleted ids, and ids whose last change was not acknowledged
	// (a failed update or delete may or may not have been applied).
	live   map[string]string
	order  []string // keys of live, for picking one at random
	gone   map[string]bool
	unsure map[string]bool

	samples []sample
	errors  map[string]int
	seedErr error
}

type sample struct {
	op string
	d  time.Duration
}

// statusKey carries a call's HTTP status from the transport to the caller.
type statusKey struct{}

// bearerTransport adds the client's token and notes the HTTP status.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	resp, err := t.base.RoundTrip(r)
	if err == nil {
		if st, ok := r.Context().Value(statusKey{}).(*atomic.Int32); ok {
			st.Store(int32(resp.StatusCode)) // #nosec G115 -- HTTP status codes are three digits
		}
	}
	return resp, err
}

func (c *client) connect(ctx context.Context, base string, rt http.RoundTripper) error {
	tr := &sdk.StreamableClientTransport{
		Endpoint:             base + "/mcp",
		HTTPClient:           &http.Client{Transport: bearerTransport{c.token, rt}, Timeout: time.Minute},
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "picard-loadtest", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		return err
	}
	c.cs = cs
	c.errors = map[string]int{}
	return nil
}

// call runs one tool call and classifies its outcome: "" for success, else
// the kind of error.
func (c *client) call(ctx context.Context, tool string, args any, out any) string {
	var status atomic.Int32
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, statusKey{}, &status), 30*time.Second)
	defer cancel()
	res, err := c.cs.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: args})
	switch st := int(status.Load()); {
	case st == http.StatusTooManyRequests:
		return Deliberate
	case st >= 300:
		return fmt.Sprintf("HTTP %d", st)
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case err != nil:
		return "transport: " + shortError(err)
	case res.IsError:
		return "tool error: " + toolCode(res)
	}
	if out != nil {
		if err := remarshal(res.StructuredContent, out); err != nil {
			return "bad result: " + shortError(err)
		}
	}
	return ""
}

func shortError(err error) string {
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// toolCode is the contract's error code at the start of a tool error's
// text ("not_found: …").
func toolCode(res *sdk.CallToolResult) string {
	for _, ct := range res.Content {
		if t, ok := ct.(*sdk.TextContent); ok {
			code, _, _ := strings.Cut(t.Text, ":")
			return code
		}
	}
	return "unknown"
}

func (c *client) record(op string, start time.Time, kind string) {
	if kind != "" {
		c.errors[op+": "+kind]++
		return
	}
	c.samples = append(c.samples, sample{op: op, d: time.Since(start)})
}

func (c *client) seed(ctx context.Context, n int) {
	ms := make([]shared.NewMemory, n)
	for i := range ms {
		ms[i] = shared.NewMemory{Text: c.text(), Tags: []string{"loadtest", "seed"}}
	}
	var out shared.MemoriesResult
	if kind := c.call(ctx, shared.ToolSubmitMemories, shared.SubmitMemoriesArgs{Memories: ms}, &out); kind != "" {
		c.seedErr = errors.New(kind)
		return
	}
	for i, m := range out.Memories {
		c.acked(m.ID, ms[i].Text)
	}
}

func (c *client) acked(id, text string) {
	if _, ok := c.live[id]; !ok {
		c.order = append(c.order, id)
	}
	c.live[id] = text
}

// step runs one operation of the mix.
func (c *client) step(ctx context.Context) {
	p := c.rng.Float64()
	switch {
	case p < 0.70:
		start := time.Now()
		args := shared.QueryMemoryArgs{Query: c.words(3), Limit: 10}
		c.record(opQuery, start, c.call(ctx, shared.ToolQueryMemory, args, nil))
	case p < 0.90 || len(c.order) == 0:
		c.submit(ctx)
	case p < 0.95:
		c.update(ctx)
	default:
		c.remove(ctx)
	}
}

func (c *client) submit(ctx context.Context) {
	text := c.text()
	var m shared.Memory
	start := time.Now()
	kind := c.call(ctx, shared.ToolSubmitMemory, shared.NewMemory{Text: text, Tags: []string{"loadtest"}}, &m)
	c.record(opSubmit, start, kind)
	if kind == "" {
		c.acked(m.ID, text)
	}
}

// pick returns one of the client's live memories, removing it from the
// pickable list when remove is set.
func (c *client) pick(remove bool) string {
	i := c.rng.IntN(len(c.order))
	id := c.order[i]
	if remove {
		c.order[i] = c.order[len(c.order)-1]
		c.order = c.order[:len(c.order)-1]
	}
	return id
}

func (c *client) update(ctx context.Context) {
	id := c.pick(false)
	text := c.text()
	start := time.Now()
	kind := c.call(ctx, shared.ToolUpdateMemory, map[string]any{"memory_id": id, "text": text}, nil)
	c.record(opUpdate, start, kind)
	if kind == "" {
		c.live[id] = text
		delete(c.unsure, id)
	} else {
		c.unsure[id] = true
	}
}

func (c *client) remove(ctx context.Context) {
	id := c.pick(true)
	start := time.Now()
	kind := c.call(ctx, shared.ToolDeleteMemory, shared.MemoryIDArgs{MemoryID: id}, nil)
	c.record(opDelete, start, kind)
	delete(c.live, id)
	if kind == "" {
		c.gone[id] = true
		delete(c.unsure, id)
	} else {
		c.unsure[id] = true // may or may not be gone; not checked
	}
}

// vocabulary of the generated texts and queries: small enough that queries
// find memories, large enough that results differ.
var vocabulary = strings.Fields(`alice bob coffee tea morning evening meeting project deadline
	garden bicycle mountain river book novel chess piano guitar recipe pasta curry bread
	holiday flight train hotel museum paris tokyo lisbon birthday gift sister brother
	doctor dentist appointment running swimming yoga budget invoice salary rent lease
	password router laptop phone camera photo album concert ticket movie series podcast
	allergy peanuts vegetarian spicy sweet salty favourite colour blue green orange`)

func (c *client) words(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = vocabulary[c.rng.IntN(len(vocabulary))]
	}
	return strings.Join(w, " ")
}

func (c *client) text() string {
	return fmt.Sprintf("client %d remembers %s (%d)", c.n, c.words(8+c.rng.IntN(16)), c.rng.Uint32())
}

// remarshal decodes a structured result (decoded by the SDK as generic
// JSON) into a typed value.
func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

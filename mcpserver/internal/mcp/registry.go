// Package mcp is the tool layer of the MCP server: every tool of the
// contract, defined once with typed input and output structs and inferred
// (then tightened) JSON schemas, and served over two transports — the MCP
// SDK server (streamable HTTP, or any SDK transport in tests) and the plain
// JSON POST /api/tools of the httpapi package — through one Registry, so
// both transports authorise, validate, execute, record and fail alike.
//
// It also serves the memories as MCP resources (memories://{memory_id},
// users://{user_id}/memories) with completion of their arguments, and in
// stateful mode notifies subscribers when a memory changes.
package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/google/uuid"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/mcpserver/internal/activity"
	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/persona"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
)

// Users is what the tools need of accounts; *user.Service implements it.
type Users interface {
	Get(ctx context.Context, id uuid.UUID) (*user.User, error)
	List(ctx context.Context, after uuid.UUID, limit int) ([]*user.User, error)
	SetDisabled(ctx context.Context, id uuid.UUID, disabled bool) (*user.User, error)
}

// TokenRevoker revokes every token of a user when an administrator disables
// the account; the oauth package implements it.
type TokenRevoker interface {
	RevokeUserTokens(ctx context.Context, userID uuid.UUID) (int, error)
}

// Deps are the dependencies of a Registry. Memories, Users and Personas are
// required; the rest may be nil.
type Deps struct {
	Memories *memory.Service
	Users    Users
	Personas *persona.Service
	// Activity records every tool call (user, client, tool, outcome,
	// duration); nil records nothing.
	Activity activity.Store
	// Tokens revokes a disabled account's tokens; nil leaves that to the
	// verifier's account check.
	Tokens TokenRevoker
	// Metrics counts calls, errors and latency per tool; nil disables.
	Metrics *Metrics
	Logger  *slog.Logger
	// Timeout bounds each tool call (config RequestTimeout); 0: none beyond
	// the caller's context. It is applied here as well as by the HTTP
	// middleware because a stateful MCP session's handlers do not run under
	// the HTTP request's context.
	Timeout time.Duration
}

// Registry holds the tools and runs calls for both transports.
type Registry struct {
	d      Deps
	tools  []*tool
	byName map[string]*tool
	rec    *recorder

	mu      sync.Mutex
	servers []*sdk.Server // notified when memories change (stateful mode)
}

// tool is one tool of the contract, transport-independent.
type tool struct {
	name        string
	title       string
	description string
	scope       string
	admin       bool // also needs an administrator account
	batch       bool // larger request bodies (10 MiB)
	annotations *sdk.ToolAnnotations
	in, out     *jsonschema.Schema
	inResolved  *jsonschema.Resolved
	example     any

	// call decodes validated arguments and runs the handler.
	call func(ctx context.Context, id *auth.Identity, args json.RawMessage) (any, error)
	// register adds the tool to an SDK server as a typed tool.
	register func(s *sdk.Server)
}

// NewRegistry returns a Registry with every tool of the contract.
func NewRegistry(d Deps) *Registry {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{d: d, byName: map[string]*tool{}}
	if d.Activity != nil {
		r.rec = newRecorder(d.Activity, d.Logger)
	}
	r.defineTools()
	return r
}

// Close flushes the activity records still queued; call it after the HTTP
// server has stopped.
func (r *Registry) Close() {
	if r.rec != nil {
		r.rec.close()
	}
}

// spec is the transport-independent description of a tool.
type spec struct {
	name, title, description string
	scope                    string
	admin, batch             bool
	readOnly, destructive    bool
	idempotent               bool
	maxLimit                 int // maximum of the "limit" argument, if any
	example                  any
}

// handler is a tool's implementation: typed arguments in, typed result out.
type handler[In, Out any] func(ctx context.Context, id *auth.Identity, in In) (Out, error)

// define adds a typed tool. The same handler serves MCP (registered with
// the SDK as a raw tool handler over the typed one) and /api/tools
// (through Registry.Call).
func define[In, Out any](r *Registry, s spec, h handler[In, Out], render func(Out) string) {
	in, out := schemaFor[In](false), schemaFor[Out](true)
	if s.maxLimit > 0 {
		setMax(in, "limit", s.maxLimit)
	}
	f := false
	t := &tool{
		name: s.name, title: s.title, description: s.description,
		scope: s.scope, admin: s.admin, batch: s.batch,
		annotations: &sdk.ToolAnnotations{
			Title:        s.title,
			ReadOnlyHint: s.readOnly,
			DestructiveHint: func() *bool {
				if s.readOnly {
					return nil // meaningless for read-only tools
				}
				b := s.destructive
				return &b
			}(),
			IdempotentHint: s.idempotent,
			OpenWorldHint:  &f, // the memory store is a closed world
		},
		in: in, out: out, inResolved: resolve(in),
		example: s.example,
	}
	t.call = func(ctx context.Context, id *auth.Identity, args json.RawMessage) (any, error) {
		var v In
		if err := json.Unmarshal(args, &v); err != nil {
			return nil, &argsError{msg: "arguments: " + err.Error()}
		}
		return h(ctx, id, v)
	}
	t.register = func(srv *sdk.Server) {
		// A raw handler rather than the SDK's typed AddTool: the typed one
		// validates the arguments a second time (the receiving middleware
		// has done it, as /api/tools does) and re-parses and validates its
		// own encoded output on every call, which together cost more than
		// a small read tool's database work (docs/performance.md). The
		// output schemas are checked against real results by the tests.
		srv.AddTool(&sdk.Tool{
			Name: t.name, Title: t.title, Description: t.description,
			Annotations: t.annotations, InputSchema: t.in, OutputSchema: t.out,
		}, func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			// The arguments were validated by the receiving middleware, which
			// hands them over; decoding them here with encoding/json keeps
			// both transports' decoding identical, e.g. an explicit null
			// expiration_date.
			st := stateFrom(ctx)
			var args json.RawMessage
			var err error
			if st != nil && st.args != nil {
				args = st.args
			} else {
				args, err = validateArgs(req.Params.Arguments, t.inResolved)
			}
			if err == nil {
				var v In
				if err = json.Unmarshal(args, &v); err == nil {
					id := identityFrom(ctx, req.Extra)
					var o Out
					if o, err = h(ctx, id, v); err == nil {
						structured, merr := json.Marshal(o)
						if merr != nil {
							return nil, fmt.Errorf("%s: encode result: %w", t.name, merr)
						}
						return &sdk.CallToolResult{
							Content:           []sdk.Content{&sdk.TextContent{Text: render(o)}},
							StructuredContent: json.RawMessage(structured),
						}, nil
					}
				} else {
					err = &argsError{msg: "arguments: " + err.Error()}
				}
			}
			if st != nil {
				st.err = err
			}
			res := &sdk.CallToolResult{}
			res.SetError(toolError(err, r.d.Logger, t.name))
			return res, nil
		})
	}
	r.tools = append(r.tools, t)
	r.byName[t.name] = t
}

// toolError turns an error into the text of an isError result:
// "code: message", which clients (and the web client) parse back.
func toolError(err error, log *slog.Logger, name string) error {
	_, e := Classify(err)
	if e.Code == shared.CodeInternal {
		log.Error("tool failed", "tool", name, "error", err)
	}
	return errors.New(e.Code + ": " + e.Message)
}

// Call runs a tool for the identity in ctx (auth.FromContext): the /api
// transport. The error is for Classify.
func (r *Registry) Call(ctx context.Context, name string, args json.RawMessage) (any, error) {
	t := r.byName[name]
	if t == nil {
		return nil, fmt.Errorf("tool: %w %q", ErrUnknownTool, name)
	}
	id := auth.FromContext(ctx)
	start := time.Now()
	out, err := r.run(ctx, t, id, args)
	r.observe(ctx, t.name, id, start, err)
	return out, err
}

func (r *Registry) run(ctx context.Context, t *tool, id *auth.Identity, args json.RawMessage) (any, error) {
	if err := authorize(id, t); err != nil {
		return nil, err
	}
	args, err := validateArgs(args, t.inResolved)
	if err != nil {
		return nil, err
	}
	ctx, cancel := r.withTimeout(ctx)
	defer cancel()
	return t.call(ctx, id, args)
}

func (r *Registry) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.d.Timeout > 0 {
		return context.WithTimeout(ctx, r.d.Timeout)
	}
	return context.WithCancel(ctx)
}

// authorize checks identity, scope and, for admin tools, the account.
func authorize(id *auth.Identity, t *tool) error {
	if id == nil {
		return ErrUnauthenticated
	}
	if !id.HasScope(t.scope) {
		return &ScopeError{Scope: t.scope}
	}
	if t.admin && !id.Admin {
		return fmt.Errorf("%s is for administrators: %w", t.name, memory.ErrForbidden)
	}
	return nil
}

// RequiredScope returns the scope a tool needs, and whether the tool exists;
// the HTTP layer uses it to pick the body limit and the challenge.
func (r *Registry) RequiredScope(name string) (string, bool) {
	t := r.byName[name]
	if t == nil {
		return "", false
	}
	return t.scope, true
}

// IsBatch reports whether a tool takes a batch (and a larger body).
func (r *Registry) IsBatch(name string) bool {
	t := r.byName[name]
	return t != nil && t.batch
}

// ToolInfo describes a tool for documentation (the OpenAPI document).
type ToolInfo struct {
	Name, Title, Description string
	Scope                    string
	Admin                    bool
	ReadOnly                 bool
	Input, Output            *jsonschema.Schema
	Example                  any
}

// Tools lists the tools in the order of the contract.
func (r *Registry) Tools() []ToolInfo {
	out := make([]ToolInfo, 0, len(r.tools))
	for _, t := range r.tools {
		out = append(out, ToolInfo{
			Name: t.name, Title: t.title, Description: t.description,
			Scope: t.scope, Admin: t.admin, ReadOnly: t.annotations.ReadOnlyHint,
			Input: t.in.CloneSchemas(), Output: t.out.CloneSchemas(), Example: t.example,
		})
	}
	return out
}

// observe records a finished call in the metrics and the activity log.
func (r *Registry) observe(ctx context.Context, name string, id *auth.Identity, start time.Time, err error) {
	d := time.Since(start)
	outcome := "ok"
	if err != nil {
		_, e := Classify(err)
		outcome = e.Code
	}
	if r.d.Metrics != nil {
		r.d.Metrics.observe(name, outcome, d)
	}
	if r.rec != nil && id != nil {
		r.rec.record(activity.Entry{
			UserID: id.UserID, ClientID: id.ClientID, Action: "tool:" + name,
			Outcome: outcome, Duration: d, At: time.Now().UTC(),
		})
	}
}

// recorder writes activity entries off the request path, so a tool call
// does not wait for a database write that its caller does not need; a full
// queue drops entries with a warning rather than slowing calls down.
type recorder struct {
	store   activity.Store
	log     *slog.Logger
	queue   chan activity.Entry
	done    chan struct{}
	pending sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

const recorderQueue = 4096

func newRecorder(s activity.Store, log *slog.Logger) *recorder {
	rc := &recorder{store: s, log: log, queue: make(chan activity.Entry, recorderQueue), done: make(chan struct{})}
	go rc.loop()
	return rc
}

func (rc *recorder) record(e activity.Entry) {
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	if rc.closed {
		return
	}
	rc.pending.Add(1)
	select {
	case rc.queue <- e:
	default:
		rc.pending.Done()
		rc.log.Warn("activity queue full; entry dropped", "action", e.Action)
	}
}

// recorderBatch bounds the entries written in one statement.
const recorderBatch = 256

// loop writes the queued entries, those queued meanwhile together: one
// INSERT a round trip could not keep up with 200 clients on Postgres,
// and the queue overflowed (docs/performance.md).
func (rc *recorder) loop() {
	defer close(rc.done)
	batch := make([]activity.Entry, 0, recorderBatch)
	for e := range rc.queue {
		batch = append(batch[:0], e)
	drain:
		for len(batch) < recorderBatch {
			select {
			case e, ok := <-rc.queue:
				if !ok {
					break drain
				}
				batch = append(batch, e)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := rc.store.Record(ctx, batch...); err != nil {
			rc.log.Warn("record activity", "entries", len(batch), "action", batch[0].Action, "error", err)
		}
		cancel()
		rc.pending.Add(-len(batch))
	}
}

func (rc *recorder) close() {
	rc.mu.Lock()
	if !rc.closed {
		rc.closed = true
		close(rc.queue)
	}
	rc.mu.Unlock()
	<-rc.done
}

// Flush waits until every activity entry queued so far is written; tests
// use it before reading the activity log.
func (r *Registry) Flush() {
	if r.rec != nil {
		r.rec.pending.Wait()
	}
}

// Package memoryclient is the web client's MCP client: one typed method per
// tool of the MCP server, each a short-lived MCP session over streamable
// HTTP that carries the user's bearer token, bounded by a timeout, with the
// server's failures mapped to errors the UI can explain.
package memoryclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/shared"
)

// Errors the UI distinguishes. A *ToolError matches the sentinel its code
// belongs to through errors.Is.
var (
	// ErrUnavailable: the server did not answer (down, slow, overloaded).
	ErrUnavailable = errors.New("the memory server is not reachable right now")
	// ErrUnauthorized: the server refused the access token.
	ErrUnauthorized = errors.New("the memory server refused the access token")
	// ErrInsufficientScope: the token lacks a scope the tool needs.
	ErrInsufficientScope = errors.New("this connection does not allow that action")
	// ErrNotFound: the memory does not exist or the user may not see it.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the server rejected the input (limits, malformed values).
	ErrInvalid = errors.New("invalid input")
	// ErrForbidden: the user may not do this to this resource.
	ErrForbidden = errors.New("not allowed")
)

// ToolError is a tool failure reported by the server (isError results).
type ToolError struct {
	Tool    string
	Code    string // a shared.Code* value when the server names one
	Message string
}

func (e *ToolError) Error() string {
	if e.Message == "" {
		return e.Tool + " failed"
	}
	return e.Message
}

// Is maps the server's error code to this package's sentinels.
func (e *ToolError) Is(target error) bool {
	switch e.Code {
	case shared.CodeNotFound:
		return target == ErrNotFound
	case shared.CodeInvalidArgument, shared.CodeTooLarge, shared.CodeConflict:
		return target == ErrInvalid
	case shared.CodeInsufficientScope:
		return target == ErrInsufficientScope
	case shared.CodePermissionDenied:
		return target == ErrForbidden
	case shared.CodeUnauthenticated:
		return target == ErrUnauthorized
	case shared.CodeRateLimited, shared.CodeUnavailable, shared.CodeInternal:
		return target == ErrUnavailable
	}
	return false
}

// TokenFunc supplies the bearer token for a call.
type TokenFunc func(ctx context.Context) (string, error)

// Options configure a Client.
type Options struct {
	// Timeout bounds each call, connection included. Default 15 s.
	Timeout time.Duration
	// Transport is the base HTTP transport; default http.DefaultTransport.
	Transport http.RoundTripper
	Logger    *slog.Logger
	Version   string
}

// Client calls the tools of one MCP endpoint.
type Client struct {
	endpoint string
	opts     Options
	impl     *mcp.Implementation
}

// New returns a Client for the MCP endpoint (…/mcp).
func New(endpoint string, opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	return &Client{endpoint: endpoint, opts: opts, impl: &mcp.Implementation{Name: "picard-webclient", Version: opts.Version}}
}

// Conn is a Client bound to one user's token.
type Conn struct {
	c     *Client
	token TokenFunc
}

// With binds the client to a token source.
func (c *Client) With(token TokenFunc) *Conn { return &Conn{c: c, token: token} }

// recorder is an http.RoundTripper that adds the bearer token and notes the
// HTTP status of refusals, which the MCP client otherwise folds into
// opaque error strings.
type recorder struct {
	base  http.RoundTripper
	token string

	mu     sync.Mutex
	status int
	scope  bool // 403 names insufficient_scope
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		r.mu.Lock()
		r.status = resp.StatusCode
		r.scope = strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope")
		r.mu.Unlock()
	}
	return resp, nil
}

func (r *recorder) refusal() (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.scope
}

// session runs fn inside a fresh MCP session. Sessions are per call: the
// server is stateless, and the token may change between calls.
func (cn *Conn) session(ctx context.Context, fn func(context.Context, *mcp.ClientSession) error) error {
	ctx, cancel := context.WithTimeout(ctx, cn.c.opts.Timeout)
	defer cancel()
	tok, err := cn.token(ctx)
	if err != nil {
		return err
	}
	rec := &recorder{base: cn.c.opts.Transport, token: tok}
	transport := &mcp.StreamableClientTransport{
		Endpoint:             cn.c.endpoint,
		HTTPClient:           &http.Client{Transport: rec},
		MaxRetries:           -1,
		DisableStandaloneSSE: true,
	}
	client := mcp.NewClient(cn.c.impl, &mcp.ClientOptions{Logger: cn.c.opts.Logger})
	cs, err := client.Connect(ctx, transport, nil)
	if err == nil {
		err = fn(ctx, cs)
		_ = cs.Close()
	}
	if err == nil {
		return nil
	}
	return cn.c.mapErr(ctx, rec, err)
}

func (c *Client) mapErr(ctx context.Context, rec *recorder, err error) error {
	var te *ToolError
	if errors.As(err, &te) {
		return err
	}
	switch status, scope := rec.refusal(); {
	case status == http.StatusUnauthorized:
		return fmt.Errorf("%w: %v", ErrUnauthorized, err)
	case status == http.StatusForbidden && scope:
		return fmt.Errorf("%w: %v", ErrInsufficientScope, err)
	case status == http.StatusForbidden:
		return fmt.Errorf("%w: %v", ErrForbidden, err)
	case status == http.StatusTooManyRequests || status >= 500:
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// A protocol-level error saying the request was wrong (unknown tool,
	// arguments failing the schema) is the caller's problem; other codes
	// (the SDK's own transport failures among them) mean the server is not
	// usable right now.
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		switch werr.Code {
		case jsonrpc.CodeInvalidRequest, jsonrpc.CodeMethodNotFound, jsonrpc.CodeInvalidParams:
			return &ToolError{Code: shared.CodeInvalidArgument, Message: werr.Message}
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: no answer within %s", ErrUnavailable, c.opts.Timeout)
	}
	// Anything else is a transport failure: refused connection, reset,
	// a response that is not MCP.
	c.opts.Logger.Warn("MCP call failed", "error", err)
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// call invokes a tool and decodes its structured result into out.
func (cn *Conn) call(ctx context.Context, tool string, args, out any) error {
	return cn.session(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			return err
		}
		if res.IsError {
			return toolError(tool, res)
		}
		return decodeResult(tool, res, out)
	})
}

func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

func decodeResult(tool string, res *mcp.CallToolResult, out any) error {
	var raw []byte
	if res.StructuredContent != nil {
		var err error
		if raw, err = json.Marshal(res.StructuredContent); err != nil {
			return err
		}
	} else {
		raw = []byte(resultText(res))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: %s returned an unexpected result: %v", ErrUnavailable, tool, err)
	}
	return nil
}

var knownCodes = []string{
	shared.CodeInvalidArgument, shared.CodeUnauthenticated, shared.CodePermissionDenied, shared.CodeInsufficientScope,
	shared.CodeNotFound, shared.CodeConflict, shared.CodeTooLarge, shared.CodeRateLimited, shared.CodeInternal, shared.CodeUnavailable,
}

// toolError reads the server's error out of an isError result. MCP has no
// structured error field, so it accepts the /api error body as structured
// content or text, and otherwise a "code: message" text.
func toolError(tool string, res *mcp.CallToolResult) error {
	te := &ToolError{Tool: tool}
	var body struct {
		shared.APIError
		Error *shared.APIError `json:"error"`
	}
	decoded := false
	if res.StructuredContent != nil {
		if raw, err := json.Marshal(res.StructuredContent); err == nil && json.Unmarshal(raw, &body) == nil {
			decoded = true
		}
	}
	text := strings.TrimSpace(resultText(res))
	if !decoded && strings.HasPrefix(text, "{") && json.Unmarshal([]byte(text), &body) == nil {
		decoded = true
	}
	if decoded {
		if body.Error != nil {
			te.Code, te.Message = body.Error.Code, body.Error.Message
		} else {
			te.Code, te.Message = body.Code, body.Message
		}
	}
	if te.Code == "" && te.Message == "" {
		te.Message = text
		for _, code := range knownCodes {
			if rest, ok := strings.CutPrefix(text, code); ok && (rest == "" || rest[0] == ':') {
				te.Code, te.Message = code, strings.TrimSpace(strings.TrimPrefix(rest, ":"))
				break
			}
		}
		// The contract lets /mcp report a missing scope as a tool error
		// naming it, with no fixed code.
		if te.Code == "" && (strings.Contains(text, "insufficient_scope") || strings.Contains(text, shared.ScopeWrite)) {
			te.Code = shared.CodeInsufficientScope
		}
	}
	if te.Message == "" {
		te.Message = te.Code
	}
	return te
}

// SubmitMemory stores one memory.
func (cn *Conn) SubmitMemory(ctx context.Context, m shared.NewMemory) (*shared.Memory, error) {
	var out shared.Memory
	return &out, cn.call(ctx, shared.ToolSubmitMemory, m, &out)
}

// SubmitMemories stores memories all or nothing and returns them in input order.
func (cn *Conn) SubmitMemories(ctx context.Context, ms []shared.NewMemory) ([]shared.Memory, error) {
	var out shared.MemoriesResult
	err := cn.call(ctx, shared.ToolSubmitMemories, shared.SubmitMemoriesArgs{Memories: ms}, &out)
	return out.Memories, err
}

// UpdateMemory changes the fields set in args.
func (cn *Conn) UpdateMemory(ctx context.Context, args shared.UpdateMemoryArgs) (*shared.Memory, error) {
	var out shared.Memory
	return &out, cn.call(ctx, shared.ToolUpdateMemory, args, &out)
}

// DeleteMemory deletes one memory.
func (cn *Conn) DeleteMemory(ctx context.Context, id string) error {
	var out shared.DeleteMemoryResult
	return cn.call(ctx, shared.ToolDeleteMemory, shared.MemoryIDArgs{MemoryID: id}, &out)
}

// ModifyPermissions changes who may see a memory.
func (cn *Conn) ModifyPermissions(ctx context.Context, args shared.ModifyPermissionsArgs) (*shared.Memory, error) {
	var out shared.Memory
	return &out, cn.call(ctx, shared.ToolModifyPermissions, args, &out)
}

// GetMemories lists memories page by page.
func (cn *Conn) GetMemories(ctx context.Context, args shared.GetMemoriesArgs) (*shared.MemoryPage, error) {
	var out shared.MemoryPage
	return &out, cn.call(ctx, shared.ToolGetMemories, args, &out)
}

// QueryMemory searches semantically, best first.
func (cn *Conn) QueryMemory(ctx context.Context, args shared.QueryMemoryArgs) ([]shared.Scored, error) {
	var out shared.QueryMemoryResult
	err := cn.call(ctx, shared.ToolQueryMemory, args, &out)
	return out.Results, err
}

// QueryUser asks a persona.
func (cn *Conn) QueryUser(ctx context.Context, args shared.QueryUserArgs) (*shared.QueryUserResult, error) {
	var out shared.QueryUserResult
	return &out, cn.call(ctx, shared.ToolQueryUser, args, &out)
}

// ListPersonas lists users with public memories.
func (cn *Conn) ListPersonas(ctx context.Context, args shared.PageArgs) (*shared.PersonaPage, error) {
	var out shared.PersonaPage
	return &out, cn.call(ctx, shared.ToolListPersonas, args, &out)
}

// GetMemory reads one memory through the memories://{id} resource; there
// is no single-memory tool.
func (cn *Conn) GetMemory(ctx context.Context, id string) (*shared.Memory, error) {
	var out shared.Memory
	err := cn.session(ctx, func(ctx context.Context, cs *mcp.ClientSession) error {
		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "memories://" + id})
		var werr *jsonrpc.Error
		if errors.As(err, &werr) && (werr.Code == jsonrpc.CodeInvalidParams || werr.Code == -32002) {
			// Servers answer -32602 (current spec) or -32002 (older SDKs).
			return &ToolError{Tool: "memories://", Code: shared.CodeNotFound, Message: "memory not found"}
		}
		if err != nil {
			return err
		}
		if len(res.Contents) == 0 {
			return fmt.Errorf("%w: empty resource", ErrNotFound)
		}
		if err := json.Unmarshal([]byte(res.Contents[0].Text), &out); err != nil {
			return fmt.Errorf("%w: memory resource is not JSON: %v", ErrUnavailable, err)
		}
		return nil
	})
	return &out, err
}

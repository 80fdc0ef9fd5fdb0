package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/shared"
)

// ServerOptions configure the MCP server.
type ServerOptions struct {
	// Version is reported to clients in the initialize handshake.
	Version string
	// Stateful keeps sessions (Mcp-Session-Id), so clients can subscribe to
	// resources and receive notifications; the default is stateless, which
	// every client and protocol version supports and which scales without
	// sticky sessions.
	Stateful bool
	// SessionTimeout closes idle stateful sessions (default 30 min).
	SessionTimeout time.Duration
	// MaxBodyBytes bounds a request body on /mcp (the HTTP layer applies
	// the per-tool limits before this); default 10 MiB.
	MaxBodyBytes int64
}

// Resource URI schemes and templates.
const (
	MemoryTemplate       = "memories://{memory_id}"
	UserMemoriesTemplate = "users://{user_id}/memories"
)

// MemoryURI is the resource URI of a memory.
func MemoryURI(id uuid.UUID) string { return "memories://" + id.String() }

// UserMemoriesURI is the resource URI of the memories of a user.
func UserMemoriesURI(id uuid.UUID) string { return "users://" + id.String() + "/memories" }

// recentResources is how many of the caller's memories resources/list
// returns per page.
const recentResources = 50

const instructions = "Picard is the user's long-term memory. Store facts, preferences and context worth keeping " +
	"with submit_memory (private unless the user says otherwise), find them with query_memory (by meaning and words) or " +
	"get_memories (by filters), and ask what other users have shared with query_user and list_personas. " +
	"Memories are also readable as resources: memories://{memory_id} and users://{user_id}/memories."

// NewServer returns an MCP SDK server with every tool, the resource
// templates, completion, and (when stateful) subscriptions. One server
// serves all requests; the caller's identity travels with each request.
func (r *Registry) NewServer(o ServerOptions) *sdk.Server {
	opts := &sdk.ServerOptions{
		Instructions:      instructions,
		Logger:            r.d.Logger,
		CompletionHandler: r.complete,
		Capabilities: &sdk.ServerCapabilities{
			Tools:     &sdk.ToolCapabilities{ListChanged: o.Stateful},
			Resources: &sdk.ResourceCapabilities{ListChanged: false, Subscribe: o.Stateful},
		},
		SchemaCache: sdk.NewSchemaCache(),
	}
	if o.Stateful {
		opts.SubscribeHandler = r.subscribe
		opts.UnsubscribeHandler = func(context.Context, *sdk.UnsubscribeRequest) error { return nil }
	}
	version := o.Version
	if version == "" {
		version = "dev"
	}
	srv := sdk.NewServer(&sdk.Implementation{Name: "picard", Title: "Picard memory", Version: version}, opts)
	for _, t := range r.tools {
		t.register(srv)
	}
	srv.AddResourceTemplate(&sdk.ResourceTemplate{
		Name: "memory", Title: "A memory", URITemplate: MemoryTemplate, MIMEType: "application/json",
		Description: "One memory the caller may see, as the JSON memory object of the tools.",
	}, r.readMemory)
	srv.AddResourceTemplate(&sdk.ResourceTemplate{
		Name: "user-memories", Title: "A user's memories", URITemplate: UserMemoriesTemplate, MIMEType: "application/json",
		Description: "The newest memories of a user that the caller may see, as {memories, next_cursor}.",
	}, r.readUserMemories)
	srv.AddReceivingMiddleware(r.middleware)
	if o.Stateful {
		r.mu.Lock()
		r.servers = append(r.servers, srv)
		r.mu.Unlock()
	}
	return srv
}

// Handler returns the streamable HTTP handler of /mcp. It expects the
// bearer middleware in front of it to have put the caller's identity in
// the request context (auth.WithIdentity), and hands it on to the tool
// handlers as the SDK's token info, which the SDK attaches to every request
// — in stateful mode too, where handlers do not run under the HTTP
// request's context, and where the token's user id binds the session.
func (r *Registry) Handler(o ServerOptions) http.Handler {
	srv := r.NewServer(o)
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 10 << 20
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 30 * time.Minute
	}
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{
		Stateless:           !o.Stateful,
		Logger:              r.d.Logger,
		SessionTimeout:      o.SessionTimeout,
		MaxRequestBodyBytes: o.MaxBodyBytes,
	})
	lift := sdkauth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*sdkauth.TokenInfo, error) {
		id := auth.FromContext(ctx)
		if id == nil {
			return nil, sdkauth.ErrInvalidToken
		}
		return TokenInfo(id), nil
	}, &sdkauth.RequireBearerTokenOptions{AllowMissingExpiration: true})
	return lift(h)
}

type identityKey struct{}

// tokenInfoIdentity is the key of the identity in TokenInfo.Extra.
const tokenInfoIdentity = "picard.identity"

// TokenInfo converts an identity to the SDK's token info.
func TokenInfo(id *auth.Identity) *sdkauth.TokenInfo {
	return &sdkauth.TokenInfo{
		Scopes: id.Scopes, Expiration: id.Expiry, UserID: id.UserID.String(),
		Extra: map[string]any{tokenInfoIdentity: id},
	}
}

// identityFrom returns the caller: from the request's token info when the
// transport carries one (HTTP), else from the context (in-process
// transports, whose connection context carries it).
func identityFrom(ctx context.Context, extra *sdk.RequestExtra) *auth.Identity {
	if extra != nil && extra.TokenInfo != nil {
		if id, ok := extra.TokenInfo.Extra[tokenInfoIdentity].(*auth.Identity); ok {
			return id
		}
	}
	return auth.FromContext(ctx)
}

// callState carries the validated arguments from the middleware to the
// typed handler, and the tool's error back to the middleware that records
// the outcome.
type callState struct {
	args json.RawMessage // validated by the middleware
	err  error
}

type callStateKey struct{}

func stateFrom(ctx context.Context) *callState {
	st, _ := ctx.Value(callStateKey{}).(*callState)
	return st
}

// middleware authorises and records MCP requests before the SDK handles
// them: tools/call gets the same scope check, argument validation,
// deadline and metrics as /api/tools; resource methods need memories:read;
// resources/list lists the caller's own memories.
func (r *Registry) middleware(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		switch method {
		case "tools/call":
			ctr, ok := req.(*sdk.CallToolRequest)
			if !ok {
				return next(ctx, method, req)
			}
			t := r.byName[ctr.Params.Name]
			if t == nil {
				return next(ctx, method, req) // the SDK reports unknown tools
			}
			id := identityFrom(ctx, ctr.Extra)
			start := time.Now()
			var args json.RawMessage
			err := authorize(id, t)
			if err == nil {
				args, err = validateArgs(ctr.Params.Arguments, t.inResolved)
			}
			if err != nil {
				r.observe(ctx, t.name, id, start, err)
				res := &sdk.CallToolResult{}
				res.SetError(toolError(err, r.d.Logger, t.name))
				return res, nil
			}
			ctx = context.WithValue(ctx, identityKey{}, id)
			ctx, cancel := r.withTimeout(ctx)
			defer cancel()
			st := &callState{args: args}
			res, err := next(context.WithValue(ctx, callStateKey{}, st), method, req)
			outcome := err
			if outcome == nil {
				outcome = st.err
			}
			r.observe(ctx, t.name, id, start, outcome)
			return res, err
		case "resources/list":
			id := identityFrom(ctx, req.GetExtra())
			if err := readAllowed(id); err != nil {
				return nil, err
			}
			p, _ := req.GetParams().(*sdk.ListResourcesParams)
			cursor := ""
			if p != nil {
				cursor = p.Cursor
			}
			return r.listResources(ctx, id, cursor)
		case "resources/read", "resources/templates/list", "resources/subscribe", "completion/complete":
			if err := readAllowed(identityFrom(ctx, req.GetExtra())); err != nil {
				return nil, err
			}
		}
		return next(ctx, method, req)
	}
}

// readAllowed checks the memories:read scope for resource methods, which
// have no isError result: a missing scope is a JSON-RPC error naming it.
func readAllowed(id *auth.Identity) error {
	if id == nil {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated: authentication required"}
	}
	if !id.HasScope(shared.ScopeRead) {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: (&ScopeError{Scope: shared.ScopeRead}).Error()}
	}
	return nil
}

// listResources lists the caller's most recently changed memories as
// resources, a page at a time (the cursor is the memory listing's).
func (r *Registry) listResources(ctx context.Context, id *auth.Identity, cursor string) (*sdk.ListResourcesResult, error) {
	c, err := memory.DecodeCursor("cursor", cursor)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
	}
	page, err := r.d.Memories.List(ctx, memory.ListQuery{
		Viewer: id.UserID, Owner: id.UserID, Sort: memory.SortUpdated, Order: memory.Desc,
		Limit: recentResources, After: c,
	})
	if err != nil {
		return nil, rpcError(err, r)
	}
	out := &sdk.ListResourcesResult{Resources: make([]*sdk.Resource, 0, len(page.Memories)), NextCursor: page.Next.Encode()}
	for _, m := range page.Memories {
		out.Resources = append(out.Resources, &sdk.Resource{
			URI: MemoryURI(m.ID), Name: "memory-" + m.ID.String()[:8], Title: excerpt(m.Text, 60),
			Description: fmt.Sprintf("%s memory, updated %s", m.Permission, m.UpdatedAt.Format(time.RFC3339)),
			MIMEType:    "application/json",
		})
	}
	return out, nil
}

func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// rpcError reports a failure of a resource method: internal errors are
// logged and not described.
func rpcError(err error, r *Registry) error {
	_, e := Classify(err)
	if e.Code == shared.CodeInternal {
		r.d.Logger.Error("resource request failed", "error", err)
	}
	return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: e.Code + ": " + e.Message}
}

// parseResourceURI splits memories://{id} and users://{id}/memories.
func parseResourceURI(raw string) (kind string, id uuid.UUID, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", uuid.Nil, false
	}
	id, err = uuid.Parse(u.Host)
	if err != nil {
		return "", uuid.Nil, false
	}
	switch {
	case u.Scheme == "memories" && (u.Path == "" || u.Path == "/"):
		return "memory", id, true
	case u.Scheme == "users" && u.Path == "/memories":
		return "user-memories", id, true
	}
	return "", uuid.Nil, false
}

func (r *Registry) readMemory(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	return r.readResource(ctx, identityFrom(ctx, req.Extra), req.Params.URI)
}

func (r *Registry) readUserMemories(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	return r.readResource(ctx, identityFrom(ctx, req.Extra), req.Params.URI)
}

// readResource reads either kind of resource. A memory the caller may not
// see answers exactly as one that does not exist.
func (r *Registry) readResource(ctx context.Context, id *auth.Identity, uri string) (*sdk.ReadResourceResult, error) {
	if err := readAllowed(id); err != nil {
		return nil, err
	}
	kind, rid, ok := parseResourceURI(uri)
	if !ok {
		return nil, sdk.ResourceNotFoundError(uri)
	}
	var body any
	switch kind {
	case "memory":
		m, err := r.d.Memories.Get(ctx, id.UserID, rid, false)
		if err != nil {
			if isNotFound(err) {
				return nil, sdk.ResourceNotFoundError(uri)
			}
			return nil, rpcError(err, r)
		}
		body = wire(m, r.d.Memories.Now())
	case "user-memories":
		if _, err := r.d.Users.Get(ctx, rid); err != nil {
			if isNotFound(err) {
				return nil, sdk.ResourceNotFoundError(uri)
			}
			return nil, rpcError(err, r)
		}
		page, err := r.list(ctx, memory.ListQuery{Viewer: id.UserID, Owner: rid}, "")
		if err != nil {
			return nil, rpcError(err, r)
		}
		body = page
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, rpcError(err, r)
	}
	return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(b)}}}, nil
}

func isNotFound(err error) bool {
	_, e := Classify(err)
	return e.Code == shared.CodeNotFound
}

// maxCompletions bounds the values of one completion answer (the spec's
// limit is 100).
const maxCompletions = 100

// complete suggests template arguments: memory ids of the caller's recent
// memories, and user ids of the caller and of personas, by prefix.
func (r *Registry) complete(ctx context.Context, req *sdk.CompleteRequest) (*sdk.CompleteResult, error) {
	id := identityFrom(ctx, req.Extra)
	if err := readAllowed(id); err != nil {
		return nil, err
	}
	res := &sdk.CompleteResult{Completion: sdk.CompletionResultDetails{Values: []string{}}}
	if req.Params.Ref == nil || req.Params.Ref.Type != "ref/resource" {
		return res, nil
	}
	prefix := strings.ToLower(req.Params.Argument.Value)
	var candidates []string
	switch {
	case req.Params.Ref.URI == MemoryTemplate && req.Params.Argument.Name == "memory_id":
		page, err := r.d.Memories.List(ctx, memory.ListQuery{
			Viewer: id.UserID, Owner: id.UserID, Sort: memory.SortUpdated, Limit: memory.MaxListLimit,
		})
		if err != nil {
			return nil, rpcError(err, r)
		}
		for _, m := range page.Memories {
			candidates = append(candidates, m.ID.String())
		}
	case req.Params.Ref.URI == UserMemoriesTemplate && req.Params.Argument.Name == "user_id":
		candidates = append(candidates, id.UserID.String())
		ps, err := r.d.Memories.Personas(ctx, uuid.Nil, memory.MaxListLimit)
		if err != nil {
			return nil, rpcError(err, r)
		}
		for _, p := range ps {
			if p.UserID != id.UserID {
				candidates = append(candidates, p.UserID.String())
			}
		}
	}
	for _, c := range candidates {
		if strings.HasPrefix(c, prefix) {
			res.Completion.Values = append(res.Completion.Values, c)
		}
	}
	res.Completion.Total = len(res.Completion.Values)
	if len(res.Completion.Values) > maxCompletions {
		res.Completion.Values = res.Completion.Values[:maxCompletions]
		res.Completion.HasMore = true
	}
	return res, nil
}

// subscribe accepts a subscription only to a resource the caller may read,
// so notifications never reveal that an invisible memory exists.
func (r *Registry) subscribe(ctx context.Context, req *sdk.SubscribeRequest) error {
	_, err := r.readResource(ctx, identityFrom(ctx, req.Extra), req.Params.URI)
	return err
}

// changed notifies subscribers (stateful servers only) that memories and
// their owner's listing changed. It does not wait: a slow subscriber must
// not delay the tool's answer.
func (r *Registry) changed(ctx context.Context, owner uuid.UUID, ids ...uuid.UUID) {
	r.mu.Lock()
	servers := r.servers
	r.mu.Unlock()
	if len(servers) == 0 {
		return
	}
	uris := make([]string, 0, len(ids)+1)
	for _, id := range ids {
		uris = append(uris, MemoryURI(id))
	}
	uris = append(uris, UserMemoriesURI(owner))
	ctx = context.WithoutCancel(ctx)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for _, srv := range servers {
			for _, u := range uris {
				if err := srv.ResourceUpdated(ctx, &sdk.ResourceUpdatedNotificationParams{URI: u}); err != nil {
					r.d.Logger.Warn("resource updated notification", "uri", u, "error", err)
				}
			}
		}
	}()
}

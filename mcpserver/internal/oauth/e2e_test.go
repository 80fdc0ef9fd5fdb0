package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"picard.dev/mcpserver/internal/embed"
	"picard.dev/mcpserver/internal/httpapi"
	"picard.dev/mcpserver/internal/mcp"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/persona"
)

// withRealMCP mounts the real /mcp and /api of httpapi over the harness's
// database, guarded by the authorization server's Verify.
func withRealMCP(h *harness) {
	mem := memory.NewService(h.db.Memories(), embed.NewHash(64), h.users, h.clock.Now)
	reg := mcp.NewRegistry(mcp.Deps{
		Memories: mem,
		Users:    h.users,
		Personas: persona.New(persona.Options{Searcher: mem, Users: h.users, Settings: h.db.PersonaSettings()}),
		Activity: h.activity,
		Tokens:   h.srv,
	})
	api, err := httpapi.New(httpapi.Options{
		Registry: reg, Verifier: h.srv, IssuerURL: h.issuer, ResourceMetadataURL: h.srv.ResourceMetadataURL(),
		AllowedOrigins: []string{h.issuer},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(api.Close)
	api.Mount(h.e)
}

// TestMCPClientOAuth is the acceptance test: the go-sdk MCP client, as an
// independent client, discovers the authorization server from the 401 of
// the real /mcp, registers itself, gets the user through login and
// consent (submitted by the test as a browser would), exchanges the code,
// lists the tools, and later refreshes its token.
func TestMCPClientOAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		h := newUnstarted(t, b, nil, withRealMCP)
		h.http.Start()
		h.newUser("mcp@example.com", false)
		browser := h.browser()

		var fetched atomic.Int32
		fetcher := func(ctx context.Context, args *sdkauth.AuthorizationArgs) (*sdkauth.AuthorizationResult, error) {
			fetched.Add(1)
			loc := browser.authorize(args.URL, "mcp@example.com", "approve")
			q := loc.Query()
			if q.Get("code") == "" {
				return nil, errors.New("no code: " + loc.String())
			}
			return &sdkauth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		}
		httpClient := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		var ts *clockSource
		handler, err := sdkauth.NewAuthorizationCodeHandler(&sdkauth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &sdkauth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName:              "go-sdk test client",
				RedirectURIs:            []string{"http://127.0.0.1:33418/callback"},
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				TokenEndpointAuthMethod: "none",
			}},
			AuthorizationCodeFetcher: fetcher,
			Client:                   httpClient,
			NewTokenSource: func(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
				ts = newClockSource(ctx, cfg, tok, h.clock)
				return ts, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		cl := sdk.NewClient(&sdk.Implementation{Name: "oauth-e2e", Version: "1"}, nil)
		sess, err := cl.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: h.resource, OAuthHandler: handler, HTTPClient: httpClient}, nil)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer sess.Close()
		tools, err := sess.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		names := map[string]bool{}
		for _, tool := range tools.Tools {
			names[tool.Name] = true
		}
		if !names["submit_memory"] || !names["query_memory"] {
			t.Fatalf("tools: %v", names)
		}
		if fetched.Load() != 1 {
			t.Fatalf("authorization ran %d times", fetched.Load())
		}
		res, err := sess.CallTool(ctx, &sdk.CallToolParams{Name: "submit_memory", Arguments: map[string]any{"text": "the e2e test was here"}})
		if err != nil || res.IsError {
			t.Fatalf("submit_memory: %v %+v", err, res)
		}
		// An hour later the access token has expired; the SDK refreshes it
		// with the rotated refresh token, without a new authorization.
		h.clock.Advance(time.Hour + time.Minute)
		if _, err := sess.ListTools(ctx, nil); err != nil {
			t.Fatalf("tools/list after expiry: %v", err)
		}
		if ts.refreshes != 1 || fetched.Load() != 1 {
			t.Fatalf("refreshes %d, authorizations %d", ts.refreshes, fetched.Load())
		}
	})
}

// clockSource is the token source the SDK gets: oauth2's own refresh,
// driven by the test clock instead of the wall clock, so the test can make
// the access token expire without waiting an hour.
type clockSource struct {
	mu        sync.Mutex
	ctx       context.Context
	cfg       *oauth2.Config
	tok       *oauth2.Token
	expiry    time.Time // on the test clock
	clock     *clock
	refreshes int
}

func newClockSource(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token, c *clock) *clockSource {
	s := &clockSource{ctx: ctx, cfg: cfg, clock: c}
	s.set(tok)
	return s
}

func (s *clockSource) set(tok *oauth2.Token) {
	s.tok = tok
	s.expiry = s.clock.Now().Add(time.Until(tok.Expiry))
}

func (s *clockSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clock.Now().Before(s.expiry.Add(-10 * time.Second)) {
		return s.tok, nil
	}
	// A token without an access token is invalid, so oauth2 refreshes.
	tok, err := s.cfg.TokenSource(s.ctx, &oauth2.Token{RefreshToken: s.tok.RefreshToken}).Token()
	if err != nil {
		return nil, err
	}
	s.refreshes++
	s.set(tok)
	return tok, nil
}

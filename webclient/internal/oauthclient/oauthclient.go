// Package oauthclient connects web-client users to the MCP server's
// authorization server: it discovers the server's metadata, registers the
// web client as a confidential client (RFC 7591) unless credentials are
// configured, runs the authorization code flow with PKCE, keeps each user's
// token pair encrypted in the database, refreshes it serially per user, and
// revokes it on disconnect.
package oauthclient

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"gorm.io/gorm"
)

// Errors callers map to pages.
var (
	// ErrNotConnected: the user has never connected (or disconnected).
	ErrNotConnected = errors.New("not connected to the memory server")
	// ErrReconnect: the stored grant is no longer honoured (refresh token
	// revoked or expired, client re-registered); the user must connect again.
	ErrReconnect = errors.New("the connection to the memory server has expired; please reconnect")
	// ErrUnavailable: the authorization server could not be reached or
	// failed; trying again later may work.
	ErrUnavailable = errors.New("the memory server is not reachable right now")
	// ErrInvalidFlow: the callback does not belong to a flow this session started.
	ErrInvalidFlow = errors.New("this authorization response does not match a connection you started; please try again")
	// ErrDenied: the user declined the authorization request.
	ErrDenied = errors.New("access was not granted")
)

// Token statuses stored in oauth_tokens.status.
const (
	statusActive    = "active"
	statusReconnect = "reconnect"
)

// refreshMargin is how long before expiry an access token is refreshed, so
// that a token never expires while a request is in flight to the server.
const refreshMargin = 2 * time.Minute

// flowTTL bounds how long a user may take on the login and consent pages.
const flowTTL = 15 * time.Minute

// Options configure a Client.
type Options struct {
	InternalURL  string   // MCP_SERVER_INTERNAL_URL: discovery, token, register, revoke
	PublicURL    string   // MCP_SERVER_URL: where the browser is sent to authorize
	Resource     string   // the resource indicator (RFC 8707)
	RedirectURI  string   // OAUTH_REDIRECT_URI
	Scopes       []string // OAUTH_SCOPES
	ClientID     string   // OAUTH_CLIENT_ID; empty → dynamic registration
	ClientSecret string   // OAUTH_CLIENT_SECRET
	ClientName   string   // shown on the consent page
	Secret       []byte   // WEBCLIENT_SECRET_KEY, for encryption at rest
	HTTPClient   *http.Client
	Logger       *slog.Logger
}

// Client is the OAuth client of the web client. It is safe for concurrent use.
type Client struct {
	opts   Options
	db     *gorm.DB
	seal   sealer
	httpc  *http.Client
	logger *slog.Logger
	now    func() time.Time

	mu   sync.Mutex // guards conf
	conf *clientConf

	locks sync.Map // user id → chan struct{} (a per-user lock that honours ctx)
}

// clientConf is what discovery and registration produce.
type clientConf struct {
	meta      metadata
	oauth     oauth2.Config
	revokeURL string
	static    bool // credentials came from the configuration
}

type metadata struct {
	Issuer                  string   `json:"issuer"`
	AuthorizationEndpoint   string   `json:"authorization_endpoint"`
	TokenEndpoint           string   `json:"token_endpoint"`
	RegistrationEndpoint    string   `json:"registration_endpoint"`
	RevocationEndpoint      string   `json:"revocation_endpoint"`
	CodeChallengeMethods    []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIS bool     `json:"authorization_response_iss_parameter_supported"`
}

type registeredClient struct {
	Issuer          string `gorm:"primaryKey"`
	RedirectURI     string `gorm:"primaryKey"`
	ClientID        string
	ClientSecretEnc string
	CreatedAt       time.Time
}

func (registeredClient) TableName() string { return "oauth_clients" }

type tokenRow struct {
	UserID          string `gorm:"primaryKey"`
	ClientID        string
	AccessTokenEnc  string
	RefreshTokenEnc string
	TokenType       string
	Scope           string
	Subject         string
	Expiry          *time.Time
	Status          string
	UpdatedAt       time.Time
}

func (tokenRow) TableName() string { return "oauth_tokens" }

type flowRow struct {
	StateHash   string `gorm:"primaryKey"`
	UserID      string
	SessionHash string
	VerifierEnc string
	CreatedAt   time.Time
}

func (flowRow) TableName() string { return "oauth_flows" }

// New returns a Client. It does not contact the server; discovery and
// registration happen on first use (or through Prepare) so the web client
// can start before the MCP server does.
func New(db *gorm.DB, opts Options) *Client {
	httpc := opts.HTTPClient
	if httpc == nil {
		httpc = &http.Client{Timeout: 10 * time.Second}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.ClientName == "" {
		opts.ClientName = "Picard web client"
	}
	return &Client{opts: opts, db: db, seal: newSealer(opts.Secret), httpc: httpc, logger: logger, now: time.Now}
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func randomString() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Prepare discovers the authorization server and makes sure the web client
// is registered with it.
func (c *Client) Prepare(ctx context.Context) error {
	_, err := c.ensure(ctx)
	return err
}

func (c *Client) ensure(ctx context.Context) (*clientConf, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conf != nil {
		return c.conf, nil
	}
	meta, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	conf := &clientConf{meta: meta, static: c.opts.ClientID != ""}
	id, secret := c.opts.ClientID, c.opts.ClientSecret
	if !conf.static {
		if id, secret, err = c.loadOrRegister(ctx, meta); err != nil {
			return nil, err
		}
	}
	conf.oauth = oauth2.Config{
		ClientID:     id,
		ClientSecret: secret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   rebase(meta.AuthorizationEndpoint, meta.Issuer, c.opts.PublicURL),
			TokenURL:  rebase(meta.TokenEndpoint, meta.Issuer, c.opts.InternalURL),
			AuthStyle: oauth2.AuthStyleInHeader, // client_secret_basic
		},
		RedirectURL: c.opts.RedirectURI,
		Scopes:      c.opts.Scopes,
	}
	if meta.RevocationEndpoint != "" {
		conf.revokeURL = rebase(meta.RevocationEndpoint, meta.Issuer, c.opts.InternalURL)
	}
	c.conf = conf
	return conf, nil
}

// rebase moves an endpoint advertised under the public issuer onto base:
// the metadata names the server as browsers reach it, while this process
// may reach it under another name (a compose service, say).
func rebase(endpoint, issuer, base string) string {
	if rest, ok := strings.CutPrefix(endpoint, strings.TrimRight(issuer, "/")); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
		return strings.TrimRight(base, "/") + rest
	}
	return endpoint
}

func (c *Client) discover(ctx context.Context) (metadata, error) {
	var m metadata
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.opts.InternalURL+"/.well-known/oauth-authorization-server", nil)
	if err != nil {
		return m, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpc.Do(req)
	if err != nil {
		return m, fmt.Errorf("%w: discovery: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("%w: discovery answered %s", ErrUnavailable, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		return m, fmt.Errorf("%w: discovery: %v", ErrUnavailable, err)
	}
	if m.Issuer == "" || m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" {
		return m, fmt.Errorf("%w: metadata lacks issuer, authorization or token endpoint", ErrUnavailable)
	}
	m.Issuer = strings.TrimRight(m.Issuer, "/")
	return m, nil
}

func (c *Client) loadOrRegister(ctx context.Context, meta metadata) (id, secret string, err error) {
	var rc registeredClient
	err = c.db.WithContext(ctx).First(&rc, "issuer = ? AND redirect_uri = ?", meta.Issuer, c.opts.RedirectURI).Error
	if err == nil {
		secret, err = c.seal.open(rc.ClientSecretEnc)
		if err == nil {
			return rc.ClientID, secret, nil
		}
		c.logger.Warn("stored client secret unreadable; registering again", "error", err)
	} else if !errors.Is(err, gorm.ErrRecordNotFound) {
		return "", "", fmt.Errorf("loading client registration: %w", err)
	}
	return c.register(ctx, meta)
}

func (c *Client) register(ctx context.Context, meta metadata) (id, secret string, err error) {
	if meta.RegistrationEndpoint == "" {
		return "", "", errors.New("the authorization server offers no registration endpoint; set OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET")
	}
	body, _ := json.Marshal(map[string]any{
		"client_name":                c.opts.ClientName,
		"redirect_uris":              []string{c.opts.RedirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "client_secret_basic",
		"scope":                      strings.Join(c.opts.Scopes, " "),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rebase(meta.RegistrationEndpoint, meta.Issuer, c.opts.InternalURL), strings.NewReader(string(body)))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpc.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("%w: registration: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 500 {
			return "", "", fmt.Errorf("%w: registration answered %s", ErrUnavailable, resp.Status)
		}
		return "", "", fmt.Errorf("registration refused (%s): %s", resp.Status, truncate(string(raw), 200))
	}
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.ClientID == "" || out.ClientSecret == "" {
		return "", "", errors.New("registration response lacks client_id or client_secret")
	}
	enc, err := c.seal.seal(out.ClientSecret)
	if err != nil {
		return "", "", err
	}
	rc := registeredClient{Issuer: meta.Issuer, RedirectURI: c.opts.RedirectURI, ClientID: out.ClientID, ClientSecretEnc: enc, CreatedAt: c.now().UTC()}
	err = c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("issuer = ? AND redirect_uri = ?", rc.Issuer, rc.RedirectURI).Delete(&registeredClient{}).Error; err != nil {
			return err
		}
		return tx.Create(&rc).Error
	})
	if err != nil {
		return "", "", fmt.Errorf("storing client registration: %w", err)
	}
	c.logger.Info("registered with the authorization server", "issuer", meta.Issuer, "client_id", out.ClientID)
	return out.ClientID, out.ClientSecret, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// clientRejected handles invalid_client: the server no longer knows the
// registration. A dynamically registered client registers again; every
// grant made to the old client is marked for reconnection.
func (c *Client) clientRejected(ctx context.Context, stale string) {
	c.mu.Lock()
	if c.conf != nil && c.conf.oauth.ClientID == stale && !c.conf.static {
		c.conf = nil
		if err := c.db.WithContext(ctx).Where("client_id = ?", stale).Delete(&registeredClient{}).Error; err != nil {
			c.logger.Error("forgetting rejected client", "error", err)
		}
	}
	c.mu.Unlock()
	if err := c.db.WithContext(ctx).Model(&tokenRow{}).Where("client_id = ?", stale).
		Updates(map[string]any{"status": statusReconnect, "updated_at": c.now().UTC()}).Error; err != nil {
		c.logger.Error("marking grants for reconnection", "error", err)
	}
	c.logger.Warn("the authorization server rejected the client; users must reconnect", "client_id", stale)
	if _, err := c.ensure(ctx); err != nil {
		c.logger.Error("registering again", "error", err)
	}
}

// StartFlow begins connecting userID and returns the authorization URL to
// redirect the browser to. sessionKey (the browser's session cookie value)
// binds the flow to this browser: a callback arriving in any other session
// is refused.
func (c *Client) StartFlow(ctx context.Context, userID, sessionKey string) (string, error) {
	conf, err := c.ensure(ctx)
	if err != nil {
		return "", err
	}
	state, verifier := randomString(), oauth2.GenerateVerifier()
	enc, err := c.seal.seal(verifier)
	if err != nil {
		return "", err
	}
	now := c.now().UTC()
	db := c.db.WithContext(ctx)
	if err := db.Where("created_at < ?", now.Add(-flowTTL)).Delete(&flowRow{}).Error; err != nil {
		return "", fmt.Errorf("purging old flows: %w", err)
	}
	if err := db.Create(&flowRow{StateHash: hashHex(state), UserID: userID, SessionHash: hashHex(sessionKey), VerifierEnc: enc, CreatedAt: now}).Error; err != nil {
		return "", fmt.Errorf("storing flow: %w", err)
	}
	return conf.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", c.opts.Resource)), nil
}

// Complete finishes the flow from the callback's query parameters and
// stores the token pair for userID.
func (c *Client) Complete(ctx context.Context, userID, sessionKey string, q url.Values) error {
	state := q.Get("state")
	if state == "" {
		return ErrInvalidFlow
	}
	var flow flowRow
	db := c.db.WithContext(ctx)
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := tx.First(&flow, "state_hash = ?", hashHex(state)).Error; err != nil {
			return err
		}
		// Single use: a replayed callback finds nothing.
		return tx.Delete(&flowRow{}, "state_hash = ?", flow.StateHash).Error
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrInvalidFlow
	}
	if err != nil {
		return fmt.Errorf("loading flow: %w", err)
	}
	if flow.UserID != userID || flow.SessionHash != hashHex(sessionKey) || c.now().UTC().Sub(flow.CreatedAt) > flowTTL {
		return ErrInvalidFlow
	}
	conf, err := c.ensure(ctx)
	if err != nil {
		return err
	}
	// RFC 9207: a response naming another issuer is a mix-up attack.
	if iss := q.Get("iss"); iss != "" {
		if strings.TrimRight(iss, "/") != conf.meta.Issuer {
			return fmt.Errorf("%w (issuer %q is not %q)", ErrInvalidFlow, iss, conf.meta.Issuer)
		}
	} else if conf.meta.AuthorizationResponseIS {
		return fmt.Errorf("%w (the response lacks the iss parameter)", ErrInvalidFlow)
	}
	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			return ErrDenied
		}
		return fmt.Errorf("the memory server refused the authorization: %s %s", e, q.Get("error_description"))
	}
	code := q.Get("code")
	if code == "" {
		return ErrInvalidFlow
	}
	verifier, err := c.seal.open(flow.VerifierEnc)
	if err != nil {
		return err
	}
	tok, err := conf.oauth.Exchange(c.httpContext(ctx), code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", c.opts.Resource))
	if err != nil {
		return c.mapTokenError(ctx, conf, err)
	}
	if tok.RefreshToken == "" {
		c.logger.Warn("token response without refresh token; the user will reconnect when the access token expires", "user_id", userID)
	}
	scope := strings.Join(c.opts.Scopes, " ")
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		scope = s
	}
	return c.store(ctx, userID, conf.oauth.ClientID, tok, scope)
}

func (c *Client) httpContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.httpc)
}

// mapTokenError turns a token endpoint failure into ErrReconnect,
// ErrUnavailable or a plain error, re-registering on invalid_client.
func (c *Client) mapTokenError(ctx context.Context, conf *clientConf, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch {
		case re.ErrorCode == "invalid_client" || (re.ErrorCode == "" && re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized):
			c.clientRejected(ctx, conf.oauth.ClientID)
			return ErrReconnect
		case re.ErrorCode == "invalid_grant":
			return ErrReconnect
		case re.Response != nil && (re.Response.StatusCode >= 500 || re.Response.StatusCode == http.StatusTooManyRequests):
			return fmt.Errorf("%w: token endpoint answered %s", ErrUnavailable, re.Response.Status)
		}
		return fmt.Errorf("token endpoint: %w", err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

func (c *Client) store(ctx context.Context, userID, clientID string, tok *oauth2.Token, scope string) error {
	at, err := c.seal.seal(tok.AccessToken)
	if err != nil {
		return err
	}
	rt, err := c.seal.seal(tok.RefreshToken)
	if err != nil {
		return err
	}
	row := tokenRow{UserID: userID, ClientID: clientID, AccessTokenEnc: at, RefreshTokenEnc: rt, TokenType: tok.Type(), Scope: scope,
		Subject: subjectOf(tok.AccessToken), Status: statusActive, UpdatedAt: c.now().UTC()}
	if !tok.Expiry.IsZero() {
		e := tok.Expiry.UTC()
		row.Expiry = &e
	}
	return c.db.WithContext(ctx).Save(&row).Error
}

// State describes a user's connection.
type State struct {
	Connected bool     // a usable grant is stored
	Reconnect bool     // a grant is stored but must be renewed by the user
	Scopes    []string // granted scopes
	// Subject is the user's id at the MCP server when the access token
	// names it; the UI uses it only to decide which buttons to show.
	Subject string
}

// Has reports whether scope was granted.
func (s State) Has(scope string) bool {
	for _, x := range s.Scopes {
		if x == scope {
			return true
		}
	}
	return false
}

// Status returns the user's connection state without contacting the server.
func (c *Client) Status(ctx context.Context, userID string) (State, error) {
	var row tokenRow
	err := c.db.WithContext(ctx).First(&row, "user_id = ?", userID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("loading grant: %w", err)
	}
	if row.Status != statusActive {
		return State{Reconnect: true}, nil
	}
	return State{Connected: true, Scopes: strings.Fields(row.Scope), Subject: row.Subject}, nil
}

// lock takes the user's lock, waiting at most as long as ctx allows.
func (c *Client) lock(ctx context.Context, userID string) (unlock func(), err error) {
	v, _ := c.locks.LoadOrStore(userID, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// AccessToken returns a valid access token for userID, refreshing it first
// when it expires within refreshMargin. Refreshes are serialised per user
// and the rotated refresh token is persisted before the new access token is
// used, so concurrent requests never spend the same refresh token twice.
func (c *Client) AccessToken(ctx context.Context, userID string) (string, error) {
	unlock, err := c.lock(ctx, userID)
	if err != nil {
		return "", err
	}
	defer unlock()
	var row tokenRow
	err = c.db.WithContext(ctx).First(&row, "user_id = ?", userID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", ErrNotConnected
	}
	if err != nil {
		return "", fmt.Errorf("loading grant: %w", err)
	}
	if row.Status != statusActive {
		return "", ErrReconnect
	}
	access, err := c.seal.open(row.AccessTokenEnc)
	if err != nil {
		return "", err
	}
	now := c.now()
	if row.Expiry == nil || row.Expiry.After(now.Add(refreshMargin)) {
		return access, nil
	}
	refresh, err := c.seal.open(row.RefreshTokenEnc)
	if err != nil {
		return "", err
	}
	if refresh == "" {
		if row.Expiry.After(now) {
			return access, nil
		}
		return "", c.markReconnect(ctx, userID)
	}
	conf, err := c.ensure(ctx)
	if err != nil {
		return c.fallback(access, row.Expiry, err)
	}
	if conf.oauth.ClientID != row.ClientID {
		// The grant belongs to a registration we no longer hold.
		return "", c.markReconnect(ctx, userID)
	}
	tok, err := conf.oauth.TokenSource(c.httpContext(ctx), &oauth2.Token{RefreshToken: refresh}).Token()
	if err != nil {
		err = c.mapTokenError(ctx, conf, err)
		if errors.Is(err, ErrReconnect) {
			return "", c.markReconnect(ctx, userID)
		}
		return c.fallback(access, row.Expiry, err)
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = refresh // no rotation: keep the one we have
	}
	scope := row.Scope
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		scope = s
	}
	// Persisting uses a fresh context: the server has already rotated the
	// refresh token, and losing the new one to a cancelled request would
	// strand the user.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := c.store(sctx, userID, row.ClientID, tok, scope); err != nil {
		return "", fmt.Errorf("persisting refreshed tokens: %w", err)
	}
	return tok.AccessToken, nil
}

// fallback keeps serving a still-valid access token when a refresh failed
// for a transient reason.
func (c *Client) fallback(access string, expiry *time.Time, err error) (string, error) {
	if errors.Is(err, ErrUnavailable) && expiry != nil && expiry.After(c.now().Add(5*time.Second)) {
		c.logger.Warn("token refresh failed; using the current access token", "error", err)
		return access, nil
	}
	return "", err
}

func (c *Client) markReconnect(ctx context.Context, userID string) error {
	if err := c.db.WithContext(context.WithoutCancel(ctx)).Model(&tokenRow{}).Where("user_id = ?", userID).
		Updates(map[string]any{"status": statusReconnect, "updated_at": c.now().UTC()}).Error; err != nil {
		return fmt.Errorf("marking grant for reconnection: %w", err)
	}
	return ErrReconnect
}

// TokenRejected records that the resource server refused the user's
// access token (HTTP 401): the grant is dead and the user must reconnect.
func (c *Client) TokenRejected(ctx context.Context, userID string) error {
	return c.markReconnect(ctx, userID)
}

// Disconnect revokes the user's tokens at the authorization server and
// forgets them. When the server cannot be reached the grant is kept and
// ErrUnavailable returned, so the user can try again rather than leave a
// live refresh token behind.
func (c *Client) Disconnect(ctx context.Context, userID string) error {
	unlock, err := c.lock(ctx, userID)
	if err != nil {
		return err
	}
	defer unlock()
	var row tokenRow
	err = c.db.WithContext(ctx).First(&row, "user_id = ?", userID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading grant: %w", err)
	}
	if err := c.revokeRow(ctx, row); err != nil {
		return err
	}
	return c.db.WithContext(ctx).Delete(&tokenRow{}, "user_id = ?", userID).Error
}

func (c *Client) revokeRow(ctx context.Context, row tokenRow) error {
	if row.Status != statusActive {
		// A grant the server already refuses needs no revocation, and
		// the registration it belongs to may be gone.
		return nil
	}
	conf, err := c.ensure(ctx)
	if err != nil {
		return err
	}
	if conf.revokeURL == "" || conf.oauth.ClientID != row.ClientID {
		return nil
	}
	// The refresh token first: revoking it ends the whole grant on most
	// servers; the access token is revoked too for servers that don't.
	for _, item := range []struct{ enc, hint string }{{row.RefreshTokenEnc, "refresh_token"}, {row.AccessTokenEnc, "access_token"}} {
		tok, err := c.seal.open(item.enc)
		if err != nil || tok == "" {
			continue
		}
		if err := c.revoke(ctx, conf, tok, item.hint); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) revoke(ctx context.Context, conf *clientConf, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, conf.revokeURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(conf.oauth.ClientID), url.QueryEscape(conf.oauth.ClientSecret))
	resp, err := c.httpc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: revocation: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusUnauthorized:
		// The server forgot this client, and with it its tokens.
		c.clientRejected(ctx, conf.oauth.ClientID)
		return nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("%w: revocation answered %s", ErrUnavailable, resp.Status)
	default:
		// RFC 7009: 400 unsupported_token_type etc. — nothing more we can do.
		c.logger.Warn("revocation refused", "status", resp.Status)
		return nil
	}
}

// Forget revokes what it can and deletes the user's grant regardless; for
// account deletion, where the user's wish to leave outranks a server that
// is down.
func (c *Client) Forget(ctx context.Context, userID string) {
	var row tokenRow
	if err := c.db.WithContext(ctx).First(&row, "user_id = ?", userID).Error; err != nil {
		return
	}
	if err := c.revokeRow(ctx, row); err != nil {
		c.logger.Warn("could not revoke tokens of a deleted account", "user_id", userID, "error", err)
	}
	_ = c.db.WithContext(ctx).Delete(&tokenRow{}, "user_id = ?", userID).Error
}

// subjectOf reads the sub claim of a JWT access token without verifying
// it. The web client is not the token's audience and trusts nothing from
// it: the MCP server enforces every permission; the claim only lets the UI
// tell the user's own memories from others'. Opaque tokens yield "".
func subjectOf(accessToken string) string {
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}

package oauth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/activity"
	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/crypt"
	"picard.dev/mcpserver/internal/oauth"
	"picard.dev/mcpserver/internal/store"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backend opens a fresh migrated database of one dialect.
type backend struct {
	name string
	open func(tb testing.TB) store.Options
}

func backends() []backend {
	return []backend{
		{"sqlite", func(tb testing.TB) store.Options {
			return store.Options{SQLitePath: filepath.Join(tb.TempDir(), "mcpserver.db")}
		}},
		{"postgres", func(tb testing.TB) store.Options { return store.Options{URL: pgtest.NewDatabase(tb)} }},
	}
}

// forEachBackend runs fn as a subtest per database.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// clock is real time plus an offset the test can move forward, so rate
// limiters and expiries both behave.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// harness is the authorization server on a real HTTP server, with a tiny
// protected endpoint at /mcp/whoami guarded by Verify, and everything a
// test needs to drive it.
type harness struct {
	t        *testing.T
	ctx      context.Context
	issuer   string
	resource string
	srv      *oauth.Server
	http     *httptest.Server
	e        *echo.Echo
	db       *store.DB
	users    *user.Service
	activity activity.Store
	clock    *clock
	keys     *oauth.SigningKeys
	key      *ecdsa.PrivateKey
}

func newHarness(t *testing.T, b backend) *harness {
	t.Helper()
	h := newUnstarted(t, b, nil, nil)
	h.http.Start()
	return h
}

// newUnstarted builds the harness; configure may change the server's
// options, mount may add routes before start.
func newUnstarted(t *testing.T, b backend, configure func(*oauth.Options), mount func(h *harness)) *harness {
	t.Helper()
	ctx := context.Background()
	opts := b.open(t)
	key, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	opts.Sealer, err = crypt.ParseKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, db: db, clock: &clock{}}
	h.http = httptest.NewUnstartedServer(nil)
	t.Cleanup(h.http.Close)
	h.issuer = "http://" + h.http.Listener.Addr().String()
	h.resource = h.issuer + "/mcp"
	h.users = user.NewService(db.Users(), h.clock.Now)
	h.activity = db.Activity()
	if h.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if h.keys, err = oauth.NewSigningKeys(h.key); err != nil {
		t.Fatal(err)
	}
	o := oauth.Options{
		Issuer: h.issuer, Users: h.users, Store: db.OAuth(), Activity: h.activity, Keys: h.keys,
		Now: h.clock.Now, RegisterPerMinute: 1000, LoginPerMinute: 1000,
	}
	if configure != nil {
		configure(&o)
	}
	h.srv, err = oauth.New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.e = echo.New()
	h.srv.Mount(h.e)
	h.e.GET("/mcp/whoami", h.whoami)
	if mount != nil {
		mount(h)
	}
	h.http.Config.Handler = h.e
	return h
}

// whoami is the protected endpoint: 401 with the RFC 9728 challenge, or
// the identity as JSON.
func (h *harness) whoami(c *echo.Context) error {
	id, err := h.bearer(c.Request())
	if err != nil {
		c.Response().Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+h.srv.ResourceMetadataURL()+`", error="invalid_token"`)
		return c.JSON(http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
	}
	return c.JSON(http.StatusOK, id)
}

func (h *harness) bearer(r *http.Request) (*auth.Identity, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, auth.ErrNoToken
	}
	return h.srv.Verify(r.Context(), tok)
}

// newUser registers an account.
func (h *harness) newUser(email string, admin bool) *user.User {
	h.t.Helper()
	u, err := h.users.Register(h.ctx, user.Registration{Email: email, Password: "correct horse battery", Admin: admin})
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

const password = "correct horse battery"

// postJSON posts v and decodes the answer into out (if not nil).
func (h *harness) postJSON(path string, v any, out any) *http.Response {
	h.t.Helper()
	body, _ := json.Marshal(v)
	resp, err := http.Post(h.issuer+path, "application/json", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	decode(h.t, resp, out)
	return resp
}

func decode(t *testing.T, resp *http.Response, out any) {
	t.Helper()
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("decode %s: %v: %s", resp.Request.URL.Path, err, data)
		}
	}
}

// postForm posts a form with optional basic auth and returns status and
// the decoded JSON body.
func (h *harness) postForm(path string, form url.Values, basicUser, basicPass string) (int, map[string]any, http.Header) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &m); err != nil {
			h.t.Fatalf("%s answered non-JSON %d: %s", path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, m, resp.Header
}

// client is a registered OAuth client.
type client struct {
	ID, Secret, Redirect string
}

func (h *harness) register(public bool, redirect string) client {
	h.t.Helper()
	req := map[string]any{"redirect_uris": []string{redirect}, "client_name": "Test Client", "grant_types": []string{"authorization_code", "refresh_token"}}
	if public {
		req["token_endpoint_auth_method"] = "none"
	}
	var out oauth.RegistrationResponse
	resp := h.postJSON("/register", req, &out)
	if resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("register: %d", resp.StatusCode)
	}
	return client{ID: out.ClientID, Secret: out.ClientSecret, Redirect: redirect}
}

// browser is a user agent with cookies that does not follow redirects to
// other hosts (the client's redirect URI), so the test can read them.
type browser struct {
	h *harness
	c *http.Client
}

func (h *harness) browser() *browser {
	jar, _ := cookiejar.New(nil)
	issuerHost := strings.TrimPrefix(h.issuer, "http://")
	return &browser{h: h, c: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != issuerHost || req.URL.Scheme != "http" {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.h.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.h.t.Helper()
	resp, err := b.c.PostForm(u, form)
	if err != nil {
		b.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var inputRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hiddenFields returns the hidden inputs of the first form posting to
// action in page.
func hiddenFields(page, action string) url.Values {
	i := strings.Index(page, `action="`+action+`"`)
	if i < 0 {
		return nil
	}
	page = page[i:]
	if j := strings.Index(page, "</form>"); j >= 0 {
		page = page[:j]
	}
	v := url.Values{}
	for _, m := range inputRe.FindAllStringSubmatch(page, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

// login signs the browser in through the login form.
func (b *browser) login(email string) {
	b.h.t.Helper()
	_, page := b.get(b.h.issuer + "/login")
	f := hiddenFields(page, "/login")
	f.Set("email", email)
	f.Set("password", password)
	resp, _ := b.post(b.h.issuer+"/login", f)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/account" {
		b.h.t.Fatalf("login ended at %d %s", resp.StatusCode, resp.Request.URL)
	}
}

// authorize runs an authorization request as a signed-in or anonymous
// user: it logs in when asked to, approves (or denies) consent, and
// returns the final redirect to the client.
func (b *browser) authorize(authURL, email, decision string) *url.URL {
	b.h.t.Helper()
	resp, page := b.get(authURL)
	if resp.Request.URL.Path == "/login" {
		f := hiddenFields(page, "/login")
		f.Set("email", email)
		f.Set("password", password)
		resp, page = b.post(b.h.issuer+"/login", f)
	}
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `name="decision"`) {
		f := hiddenFields(page, "/authorize")
		f.Set("decision", decision)
		resp, page = b.post(b.h.issuer+"/authorize", f)
	}
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		b.h.t.Fatalf("authorization ended with %d at %s: %.400s", resp.StatusCode, resp.Request.URL, page)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		b.h.t.Fatal(err)
	}
	return loc
}

// pkce returns a verifier and its S256 challenge.
func pkce(seed string) (verifier, challenge string) {
	verifier = strings.Repeat(seed, 43/len(seed)+1)[:43] + "-verifier"
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authURL builds an authorization request.
func (h *harness) authURL(c client, challenge string, extra url.Values) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {c.Redirect},
		"scope": {"memories:read memories:write"}, "state": {"st-123"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		if len(v) == 0 {
			q.Del(k)
		} else {
			q[k] = v
		}
	}
	return h.issuer + "/authorize?" + q.Encode()
}

// code runs the whole authorization for c and returns a fresh code.
func (h *harness) code(b *browser, c client, email, challenge string) string {
	h.t.Helper()
	loc := b.authorize(h.authURL(c, challenge, nil), email, "approve")
	code := loc.Query().Get("code")
	if code == "" {
		h.t.Fatalf("no code in redirect %s", loc)
	}
	return code
}

// exchange redeems a code.
func (h *harness) exchange(c client, code, verifier string) (int, map[string]any) {
	h.t.Helper()
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.Redirect}, "code_verifier": {verifier}}
	if c.Secret == "" {
		f.Set("client_id", c.ID)
		st, body, _ := h.postForm("/token", f, "", "")
		return st, body
	}
	st, body, _ := h.postForm("/token", f, c.ID, c.Secret)
	return st, body
}

func (h *harness) refresh(c client, rt string) (int, map[string]any) {
	h.t.Helper()
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	if c.Secret == "" {
		f.Set("client_id", c.ID)
		st, body, _ := h.postForm("/token", f, "", "")
		return st, body
	}
	st, body, _ := h.postForm("/token", f, c.ID, c.Secret)
	return st, body
}

// call uses an access token on the protected endpoint.
func (h *harness) call(token string) int {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.issuer+"/mcp/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// tokens runs register → authorize → token for a new user and returns
// the client, the user and the token response.
func (h *harness) tokens(public bool, email string) (client, *user.User, map[string]any) {
	h.t.Helper()
	c := h.register(public, "http://127.0.0.1:9999/callback")
	u := h.newUser(email, false)
	v, ch := pkce("abc")
	code := h.code(h.browser(), c, email, ch)
	st, body := h.exchange(c, code, v)
	if st != http.StatusOK {
		h.t.Fatalf("exchange: %d %v", st, body)
	}
	return c, u, body
}

// newUnstartedOn builds a second server instance over h's database, as
// another replica would be.
func newUnstartedOn(t *testing.T, h *harness) *oauth.Server {
	t.Helper()
	srv, err := oauth.New(oauth.Options{Issuer: h.issuer, Users: h.users, Store: h.db.OAuth(), Keys: h.keys, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func newKeyPair(t *testing.T) (*ecdsa.PrivateKey, *oauth.SigningKeys) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := oauth.NewSigningKeys(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, ks
}

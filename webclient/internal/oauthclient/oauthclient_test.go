package oauthclient

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"picard.dev/webclient/internal/store"
	"picard.dev/webclient/internal/testserver"
)

type fixture struct {
	fake *testserver.Server
	db   *gorm.DB
	c    *Client
}

const userID = "00000000-0000-0000-0000-000000000001"

func setup(t *testing.T) *fixture {
	t.Helper()
	fake := testserver.New()
	t.Cleanup(fake.Close)
	db, err := store.Open(context.Background(), "", filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := db.Gorm.Exec(`INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, 'a@example.com', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`, userID).Error; err != nil {
		t.Fatal(err)
	}
	c := New(db.Gorm, Options{
		InternalURL: fake.URL, PublicURL: fake.URL, Resource: fake.URL + "/mcp",
		RedirectURI: "http://webclient.test/oauth/callback", Scopes: []string{"memories:read", "memories:write"},
		Secret: []byte(strings.Repeat("k", 32)),
	})
	fake.User("a@example.com", "A")
	fake.SetNextUser("a@example.com")
	return &fixture{fake: fake, db: db.Gorm, c: c}
}

// connect runs the authorization code flow, following the fake's
// immediate redirect back to the callback.
func (f *fixture) connect(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	u, err := f.c.StartFlow(ctx, userID, "session-1")
	if err != nil {
		t.Fatal(err)
	}
	if q := mustURL(t, u).Query(); q.Get("code_challenge_method") != "S256" || q.Get("resource") != f.fake.URL+"/mcp" || q.Get("state") == "" {
		t.Fatalf("authorization URL %s", u)
	}
	cb := f.follow(t, u)
	if err := f.c.Complete(ctx, userID, "session-1", cb.Query()); err != nil {
		t.Fatal(err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) follow(t *testing.T, authURL string) *url.URL {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %s", resp.Status)
	}
	return mustURL(t, resp.Header.Get("Location"))
}

func (f *fixture) row(t *testing.T) tokenRow {
	t.Helper()
	var r tokenRow
	if err := f.db.First(&r, "user_id = ?", userID).Error; err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConnectStoresEncryptedTokens(t *testing.T) {
	f := setup(t)
	f.connect(t)
	r := f.row(t)
	for _, tok := range f.fake.IssuedTokens() {
		if strings.Contains(r.AccessTokenEnc+r.RefreshTokenEnc, tok) {
			t.Fatal("token stored in clear text")
		}
	}
	st, err := f.c.Status(context.Background(), userID)
	if err != nil || !st.Connected || !st.Has("memories:write") || st.Subject == "" {
		t.Fatalf("status %+v %v", st, err)
	}
	if f.fake.RegisterCalls.Load() != 1 {
		t.Fatalf("registered %d times", f.fake.RegisterCalls.Load())
	}
	// A second client over the same database reuses the registration.
	c2 := New(f.db, f.c.opts)
	if err := c2.Prepare(context.Background()); err != nil || f.fake.RegisterCalls.Load() != 1 {
		t.Fatalf("re-registered: %v", err)
	}
}

func TestCallbackChecks(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	u, _ := f.c.StartFlow(ctx, userID, "session-1")
	cb := f.follow(t, u).Query()

	tamper := func(k, v string) url.Values {
		q := url.Values{}
		for key, vals := range cb {
			q[key] = slices.Clone(vals)
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	if err := f.c.Complete(ctx, userID, "session-1", tamper("state", "forged")); !errors.Is(err, ErrInvalidFlow) {
		t.Errorf("forged state: %v", err)
	}
	// Wrong session: the flow is consumed and refused.
	if err := f.c.Complete(ctx, userID, "session-2", cb); !errors.Is(err, ErrInvalidFlow) {
		t.Errorf("other session: %v", err)
	}
	if err := f.c.Complete(ctx, userID, "session-1", cb); !errors.Is(err, ErrInvalidFlow) {
		t.Errorf("replayed state: %v", err)
	}
	u, _ = f.c.StartFlow(ctx, userID, "session-1")
	cb = f.follow(t, u).Query()
	if err := f.c.Complete(ctx, userID, "session-1", tamper("iss", "https://evil.example")); !errors.Is(err, ErrInvalidFlow) {
		t.Errorf("wrong iss: %v", err)
	}
	u, _ = f.c.StartFlow(ctx, userID, "session-1")
	cb = f.follow(t, u).Query()
	if err := f.c.Complete(ctx, userID, "session-1", tamper("iss", "")); !errors.Is(err, ErrInvalidFlow) {
		t.Errorf("missing iss although the server advertises it: %v", err)
	}
	u, _ = f.c.StartFlow(ctx, userID, "session-1")
	state := mustURL(t, u).Query().Get("state")
	if err := f.c.Complete(ctx, userID, "session-1", url.Values{"state": {state}, "error": {"access_denied"}, "iss": {f.fake.URL}}); !errors.Is(err, ErrDenied) {
		t.Errorf("denied: %v", err)
	}
	if st, _ := f.c.Status(ctx, userID); st.Connected {
		t.Fatal("connected after refused callbacks")
	}
}

func TestRefreshBeforeExpiryPersistsRotation(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	f.fake.SetAccessTTL(90 * time.Second) // inside refreshMargin
	f.connect(t)
	before := f.row(t)
	f.fake.SetAccessTTL(time.Hour)
	tok, err := f.c.AccessToken(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	if f.fake.RefreshCalls.Load() != 1 {
		t.Fatalf("refreshes: %d, want 1", f.fake.RefreshCalls.Load())
	}
	after := f.row(t)
	if after.RefreshTokenEnc == before.RefreshTokenEnc || after.AccessTokenEnc == before.AccessTokenEnc {
		t.Fatal("rotated tokens not persisted")
	}
	// The persisted refresh token is the live one: the old one was spent.
	rt, _ := f.c.seal.open(after.RefreshTokenEnc)
	if !slices.Contains(f.fake.LiveTokens(), rt) || !slices.Contains(f.fake.LiveTokens(), tok) {
		t.Fatal("stored tokens are not the server's current ones")
	}
	// Far from expiry: no refresh.
	if _, err := f.c.AccessToken(ctx, userID); err != nil || f.fake.RefreshCalls.Load() != 1 {
		t.Fatalf("unneeded refresh: %v, %d", err, f.fake.RefreshCalls.Load())
	}
}

func TestConcurrentRequestsRefreshOnce(t *testing.T) {
	f := setup(t)
	f.fake.SetAccessTTL(30 * time.Second)
	f.connect(t)
	f.fake.SetAccessTTL(time.Hour)
	var wg sync.WaitGroup
	toks := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Go(func() { toks[i], errs[i] = f.c.AccessToken(context.Background(), userID) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if toks[i] != toks[0] {
			t.Fatal("requests got different tokens")
		}
	}
	if n := f.fake.RefreshCalls.Load(); n != 1 {
		t.Fatalf("%d refresh calls, want exactly 1", n)
	}
}

func TestDeadRefreshTokenAsksToReconnect(t *testing.T) {
	f := setup(t)
	f.fake.SetAccessTTL(30 * time.Second)
	f.connect(t)
	f.fake.RevokeAll()
	if _, err := f.c.AccessToken(context.Background(), userID); !errors.Is(err, ErrReconnect) {
		t.Fatalf("got %v, want ErrReconnect", err)
	}
	st, _ := f.c.Status(context.Background(), userID)
	if !st.Reconnect || st.Connected {
		t.Fatalf("status %+v", st)
	}
	// Reconnecting restores the grant.
	f.fake.SetAccessTTL(time.Hour)
	f.connect(t)
	if _, err := f.c.AccessToken(context.Background(), userID); err != nil {
		t.Fatal(err)
	}
}

func TestServerDownDuringRefresh(t *testing.T) {
	f := setup(t)
	f.fake.SetAccessTTL(90 * time.Second)
	f.connect(t)
	f.fake.Down.Store(true)
	// Still valid for 90 s: the current token is served.
	if _, err := f.c.AccessToken(context.Background(), userID); err != nil {
		t.Fatalf("valid token not served while the server is down: %v", err)
	}
	f.fake.Down.Store(false)
	if st, _ := f.c.Status(context.Background(), userID); !st.Connected {
		t.Fatal("an outage marked the grant for reconnection")
	}
}

func TestInvalidClientRegistersAgain(t *testing.T) {
	f := setup(t)
	f.fake.SetAccessTTL(30 * time.Second)
	f.connect(t)
	f.fake.ForgetClients()
	if _, err := f.c.AccessToken(context.Background(), userID); !errors.Is(err, ErrReconnect) {
		t.Fatalf("got %v, want ErrReconnect", err)
	}
	if n := f.fake.RegisterCalls.Load(); n != 2 {
		t.Fatalf("registrations: %d, want 2", n)
	}
	f.connect(t)
	if _, err := f.c.AccessToken(context.Background(), userID); err != nil {
		t.Fatal(err)
	}
}

func TestDisconnectRevokes(t *testing.T) {
	f := setup(t)
	f.connect(t)
	ctx := context.Background()
	f.fake.Down.Store(true)
	if err := f.c.Disconnect(ctx, userID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("disconnect while down: %v", err)
	}
	if st, _ := f.c.Status(ctx, userID); !st.Connected {
		t.Fatal("grant dropped although revocation failed")
	}
	f.fake.Down.Store(false)
	if err := f.c.Disconnect(ctx, userID); err != nil {
		t.Fatal(err)
	}
	if f.fake.RevokeCalls.Load() == 0 || len(f.fake.LiveTokens()) != 0 {
		t.Fatalf("revoke calls %d, live tokens %d", f.fake.RevokeCalls.Load(), len(f.fake.LiveTokens()))
	}
	if _, err := f.c.AccessToken(ctx, userID); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("after disconnect: %v", err)
	}
}

func TestRebase(t *testing.T) {
	for _, tt := range [][4]string{
		{"http://localhost:8001/token", "http://localhost:8001", "http://mcpserver:8001", "http://mcpserver:8001/token"},
		{"http://localhost:8001", "http://localhost:8001", "http://x", "http://x"},
		{"http://localhost:80010/token", "http://localhost:8001", "http://x", "http://localhost:80010/token"},
		{"https://other/token", "http://localhost:8001", "http://x", "https://other/token"},
	} {
		if got := rebase(tt[0], tt[1], tt[2]); got != tt[3] {
			t.Errorf("rebase(%s) = %s, want %s", tt[0], got, tt[3])
		}
	}
}

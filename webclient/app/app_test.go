package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"picard.dev/shared"
	"picard.dev/webclient/app"
	"picard.dev/webclient/internal/testserver"
)

// stack is the real web client, in-process, against the fake MCP server.
type stack struct {
	t    *testing.T
	mcp  *testserver.Server
	base string

	mu     sync.Mutex
	bodies []string // every response body seen, for the token-leak check
	cookie []string // every Set-Cookie seen
}

func start(t *testing.T) *stack {
	t.Helper()
	fake := testserver.New()
	t.Cleanup(fake.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg, err := app.ConfigFromMap(map[string]string{
		"WEBCLIENT_BASE_URL":   base,
		"MCP_SERVER_URL":       fake.URL,
		"WEBCLIENT_DATA_DIR":   t.TempDir(),
		"WEBCLIENT_SECRET_KEY": strings.Repeat("s", 40),
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.NewWithListener(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})), ln)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		a.Close()
	})
	return &stack{t: t, mcp: fake, base: base}
}

// browser is one user's cookie jar.
type browser struct {
	s    *stack
	c    *http.Client
	csrf string
}

func (s *stack) browser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{s: s}
	b.c = &http.Client{Jar: jar, Timeout: 30 * time.Second}
	return b
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

type page struct {
	status int
	body   string
	url    string
}

func (b *browser) do(req *http.Request) page {
	b.s.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	b.s.mu.Lock()
	b.s.bodies = append(b.s.bodies, string(raw))
	for r := resp; r != nil; r = r.Request.Response {
		b.s.cookie = append(b.s.cookie, r.Header.Values("Set-Cookie")...)
		b.s.bodies = append(b.s.bodies, r.Header.Get("Location"))
	}
	b.s.mu.Unlock()
	if m := csrfRE.FindStringSubmatch(string(raw)); m != nil {
		b.csrf = m[1]
	}
	return page{status: resp.StatusCode, body: string(raw), url: resp.Request.URL.String()}
}

func (b *browser) get(path string) page {
	req, _ := http.NewRequest(http.MethodGet, b.s.base+path, nil)
	return b.do(req)
}

// post submits a form with this browser's CSRF token unless the form sets one.
func (b *browser) post(path string, form url.Values) page {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf_token"]; !ok {
		form.Set("csrf_token", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.s.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func must(t *testing.T, p page, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("%s: status %d, want %d\n%s", p.url, p.status, status, p.body)
	}
	for _, c := range contains {
		if !strings.Contains(p.body, c) {
			t.Fatalf("%s: body lacks %q\n%s", p.url, c, p.body)
		}
	}
}

// signUpAndConnect makes a web-client account and connects it to the fake
// server as the fake user with the same email.
func (s *stack) signUpAndConnect(email string) *browser {
	s.t.Helper()
	s.mcp.User(email, strings.Split(email, "@")[0])
	b := s.browser()
	b.get("/signup")
	must(s.t, b.post("/signup", url.Values{"email": {email}, "password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}}), http.StatusOK, "Connect")
	s.mcp.SetNextUser(email)
	must(s.t, b.post("/oauth/connect", nil), http.StatusOK, "Connected to the memory server")
	return b
}

func TestHealthz(t *testing.T) {
	s := start(t)
	p := s.browser().get("/healthz")
	must(t, p, http.StatusOK, `"ok"`)
}

func TestMemoriesEndToEnd(t *testing.T) {
	s := start(t)
	alice := s.signUpAndConnect("alice@example.com")
	bobID := s.mcp.User("bob@example.com", "bob")

	// Create through the list page's quick form (field "text").
	alice.get("/memories")
	p := alice.post("/memories", url.Values{"text": {"I like **green tea** <script>alert(1)</script>"}, "permission": {"private"}, "tags": {"drinks, tea"}})
	must(t, p, http.StatusOK, "Memory saved.", "<strong>green tea</strong>", "#tea")
	if strings.Contains(p.body, "<script>alert(1)") {
		t.Fatal("raw HTML from a memory reached the page")
	}
	id := s.mcp.Memories()[0].ID

	// Edit: text, tags, metadata, share with bob by email, expiration.
	must(t, alice.get("/memories/"+id+"/edit"), http.StatusOK, `name="meta_key"`)
	p = alice.post("/memories/"+id+"/edit", url.Values{
		"text": {"I like green tea in the morning"}, "tags": {"tea"}, "permission": {"shared"}, "shared_with": {"bob@example.com"},
		"meta_key": {"mood", ""}, "meta_value": {"calm", ""}, "expiration_date": {"2099-01-02T03:04"},
	})
	must(t, p, http.StatusOK, "Memory updated.", "in the morning", "mood", "calm", "2099-01-02 03:04 UTC", bobID)

	// A form error keeps the input.
	p = alice.post("/memories/"+id+"/edit", url.Values{"text": {"kept text"}, "permission": {"private"}, "shared_with": {"bob@example.com"}})
	must(t, p, http.StatusUnprocessableEntity, "kept text", "set the permission to shared")

	// Bob, connected as himself, sees the shared memory.
	bob := s.signUpAndConnect("bob@example.com")
	must(t, bob.get("/memories/"+id), http.StatusOK, "in the morning")

	// Search shows scores; filters work.
	must(t, alice.get("/memories?q=green+tea"), http.StatusOK, "score 1.000")
	must(t, alice.get("/memories?permission=public"), http.StatusOK, "No memories here yet.")

	// Inline permission change to public, then bob asks alice's persona.
	must(t, alice.post("/memories/"+id+"/permission", url.Values{"permission": {"public"}, "back": {"/memories"}}), http.StatusOK, "Permission changed.")
	aliceID := s.mcp.Memories()[0].OwnerID
	must(t, bob.get("/personas"), http.StatusOK, "/personas/"+aliceID)
	bob.get("/personas/" + aliceID)
	must(t, bob.post("/personas/"+aliceID, url.Values{"prompt": {"what tea?"}}), http.StatusOK, "Answer", "in the morning", "Memories it drew on")
	must(t, alice.get("/personas/me"), http.StatusOK, "Your public memories", "in the morning")

	// Export JSON and CSV.
	p = alice.get("/export?format=json")
	must(t, p, http.StatusOK, `"text":"I like green tea in the morning"`)
	p = alice.get("/export?format=csv")
	must(t, p, http.StatusOK, "id,text,permission,tags", "I like green tea in the morning")

	// Import with a bad row: preview shows it and nothing is stored.
	alice.get("/import")
	csvBad := "text,tags,permission\nfirst,a,private\n,b,private\nthird,c,secret\n"
	p = alice.post("/import", url.Values{"content": {csvBad}, "action": {"import"}})
	must(t, p, http.StatusUnprocessableEntity, "text is empty", "is not private, public or shared")
	if n := len(s.mcp.Memories()); n != 1 {
		t.Fatalf("after a failed import there are %d memories, want 1", n)
	}
	csvGood := "text,tags,permission\nfirst,a,private\nsecond,b,public\n"
	must(t, alice.post("/import", url.Values{"content": {csvGood}, "action": {"preview"}}), http.StatusOK, "All 2 rows are valid", "Import 2 memories")
	must(t, alice.post("/import", url.Values{"content": {csvGood}, "action": {"import"}}), http.StatusOK, "Import complete.")
	if n := len(s.mcp.Memories()); n != 3 {
		t.Fatalf("after import there are %d memories, want 3", n)
	}

	// Delete with confirmation.
	must(t, alice.get("/memories/"+id+"/delete"), http.StatusOK, "Delete this memory?")
	must(t, alice.post("/memories/"+id+"/delete", nil), http.StatusOK, "Memory deleted.")
	must(t, alice.get("/memories/"+id), http.StatusNotFound, "does not exist")

	// Disconnect revokes at the server.
	alice.get("/connect")
	must(t, alice.post("/oauth/disconnect", nil), http.StatusOK, "Disconnected")
	if s.mcp.RevokeCalls.Load() == 0 {
		t.Fatal("disconnect did not call /revoke")
	}
	must(t, alice.get("/memories"), http.StatusOK, "needs a connection")

	// No token, access or refresh, ever reached a browser.
	s.assertNoTokens(t)
}

func (s *stack) assertNoTokens(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	toks := s.mcp.IssuedTokens()
	if len(toks) == 0 {
		t.Fatal("the fake issued no tokens; the check would be vacuous")
	}
	for _, tok := range toks {
		for _, b := range s.bodies {
			if strings.Contains(b, tok) {
				t.Fatalf("a token appeared in a response: %.60s…", b)
			}
		}
		for _, c := range s.cookie {
			if strings.Contains(c, tok) {
				t.Fatalf("a token appeared in a cookie: %s", c)
			}
		}
	}
}

func TestCSRFRejected(t *testing.T) {
	s := start(t)
	alice := s.signUpAndConnect("alice@example.com")
	alice.get("/memories")
	p := alice.post("/memories", url.Values{"text": {"forged"}, "csrf_token": {"wrong"}})
	must(t, p, http.StatusForbidden, "Form expired")
	p = alice.post("/memories", url.Values{"text": {"forged"}, "csrf_token": {""}})
	must(t, p, http.StatusForbidden)
	if n := len(s.mcp.Memories()); n != 0 {
		t.Fatalf("a forged form stored %d memories", n)
	}
	// A token from another browser does not work either.
	other := s.browser()
	other.get("/login")
	must(t, alice.post("/oauth/disconnect", url.Values{"csrf_token": {other.csrf}}), http.StatusForbidden)
	must(t, other.post("/login", url.Values{"email": {"alice@example.com"}, "password": {"correct horse battery"}, "csrf_token": {"x"}}), http.StatusForbidden)
}

func sessionCookie(b *browser, base string) string {
	u, _ := url.Parse(base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "picard_web_session" {
			return c.Value
		}
	}
	return ""
}

func TestSessionFixation(t *testing.T) {
	s := start(t)
	a := s.browser()
	a.get("/signup")
	a.post("/signup", url.Values{"email": {"eve@example.com"}, "password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}})
	first := sessionCookie(a, s.base)
	if first == "" {
		t.Fatal("no session after sign-up")
	}
	// An attacker plants a session id in the victim's browser; logging in
	// must not adopt it.
	victim := s.browser()
	u, _ := url.Parse(s.base)
	victim.c.Jar.SetCookies(u, []*http.Cookie{{Name: "picard_web_session", Value: first, Path: "/"}})
	victim.get("/login")
	must(t, victim.post("/login", url.Values{"email": {"eve@example.com"}, "password": {"correct horse battery"}}), http.StatusOK)
	got := sessionCookie(victim, s.base)
	if got == "" || got == first {
		t.Fatalf("login kept the planted session id")
	}
	// The planted session was ended by the login in the victim's browser.
	must(t, a.get("/account"), http.StatusOK, "Log in")

	// Wrong password: 401, email kept.
	c := s.browser()
	c.get("/login")
	must(t, c.post("/login", url.Values{"email": {"eve@example.com"}, "password": {"nope nope nope"}}), http.StatusUnauthorized, "Wrong email or password", `value="eve@example.com"`)
}

func TestLoginRateLimited(t *testing.T) {
	s := start(t)
	b := s.browser()
	b.get("/login")
	var last page
	for range 15 {
		last = b.post("/login", url.Values{"email": {"x@example.com"}, "password": {"guess guess guess"}})
	}
	must(t, last, http.StatusTooManyRequests, "Too many")
}

func TestUserIsolation(t *testing.T) {
	s := start(t)
	alice := s.signUpAndConnect("alice@example.com")
	alice.get("/memories")
	must(t, alice.post("/memories", url.Values{"text": {"alice's secret"}, "permission": {"private"}}), http.StatusOK)
	id := s.mcp.Memories()[0].ID

	bob := s.signUpAndConnect("bob@example.com")
	must(t, bob.get("/memories/"+id), http.StatusNotFound)
	must(t, bob.get("/memories/"+id+"/edit"), http.StatusNotFound)
	bob.get("/memories")
	must(t, bob.post("/memories/"+id+"/delete", nil), http.StatusNotFound)
	must(t, bob.post("/memories/"+id+"/edit", url.Values{"text": {"pwned"}}), http.StatusNotFound)
	if p := bob.get("/memories"); strings.Contains(p.body, "alice&#39;s secret") || strings.Contains(p.body, "alice's secret") {
		t.Fatal("bob's list shows alice's private memory")
	}
	if p := bob.get("/export?format=json"); strings.Contains(p.body, "secret") {
		t.Fatal("bob's export contains alice's memory")
	}
	if m := s.mcp.Memories(); len(m) != 1 || m[0].Text != "alice's secret" {
		t.Fatalf("alice's memory changed: %+v", m)
	}
	// Without a session, nothing is reachable.
	anon := s.browser()
	must(t, anon.get("/memories/"+id), http.StatusOK, "Log in")
}

func TestReadOnlyScopeHidesWriteButtons(t *testing.T) {
	s := start(t)
	s.mcp.SetGrantScopes(shared.ScopeRead)
	b := s.signUpAndConnect("reader@example.com")
	p := b.get("/memories")
	must(t, p, http.StatusOK)
	if strings.Contains(p.body, "/memories/new") || strings.Contains(p.body, "Quick add") {
		t.Fatal("write controls shown for a read-only grant")
	}
	p = b.post("/memories", url.Values{"text": {"should not be stored"}})
	must(t, p, http.StatusUnprocessableEntity, "only allows reading", "should not be stored")
}

func TestServerDownKeepsInput(t *testing.T) {
	s := start(t)
	b := s.signUpAndConnect("alice@example.com")
	b.get("/memories/new")
	s.mcp.Down.Store(true)
	p := b.post("/memories", url.Values{"text": {"my unsaved thought"}, "tags": {"keep"}})
	must(t, p, http.StatusUnprocessableEntity, "did not answer", "my unsaved thought", `value="keep"`)
	must(t, b.get("/memories"), http.StatusServiceUnavailable, "Memory server unavailable", "Try again")
	s.mcp.Down.Store(false)
	must(t, b.get("/memories"), http.StatusOK)
}

func TestRevokedGrantAsksToReconnect(t *testing.T) {
	s := start(t)
	b := s.signUpAndConnect("alice@example.com")
	s.mcp.RevokeAll()
	must(t, b.get("/memories"), http.StatusUnauthorized, "Please reconnect")
	must(t, b.get("/"), http.StatusOK, "has expired")
	must(t, b.get("/memories"), http.StatusOK, "Reconnect")
	s.mcp.SetNextUser("alice@example.com")
	must(t, b.post("/oauth/connect", nil), http.StatusOK, "Connected to the memory server")
	must(t, b.get("/memories"), http.StatusOK, "No memories here yet.")
}

func TestDeleteAccountRevokes(t *testing.T) {
	s := start(t)
	b := s.signUpAndConnect("alice@example.com")
	b.get("/account")
	must(t, b.post("/account/delete", url.Values{"password": {"wrong password!"}}), http.StatusUnprocessableEntity, "not deleted")
	must(t, b.post("/account/delete", url.Values{"password": {"correct horse battery"}}), http.StatusOK, "Your account was deleted.")
	if len(s.mcp.LiveTokens()) != 0 {
		t.Fatal("deleting the account left live tokens at the server")
	}
	b.get("/login")
	must(t, b.post("/login", url.Values{"email": {"alice@example.com"}, "password": {"correct horse battery"}}), http.StatusUnauthorized)
}

func TestSecurityHeaders(t *testing.T) {
	s := start(t)
	resp, err := http.Get(s.base + "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP allows scripts: %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
}

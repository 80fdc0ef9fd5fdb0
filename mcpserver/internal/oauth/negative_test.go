package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// TestNegative runs one test per attack or mistake, on each database.
func TestNegative(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"CodeReplayRevokesTokens", testCodeReplay},
		{"ConcurrentRedemption", testConcurrentRedemption},
		{"WrongVerifier", testWrongVerifier},
		{"MissingPKCE", testMissingPKCE},
		{"PlainPKCE", testPlainPKCE},
		{"RedirectMismatch", testRedirectMismatch},
		{"UnknownClient", testUnknownClient},
		{"WrongSecret", testWrongSecret},
		{"ExpiredCode", testExpiredCode},
		{"RefreshReuseRevokesFamily", testRefreshReuse},
		{"RevokedAccessToken", testRevokedAccessToken},
		{"OtherAudience", testOtherAudience},
		{"ForgedTokens", testForgedTokens},
		{"DisabledUser", testDisabledUser},
		{"ConsentCSRF", testConsentCSRF},
		{"OpenRedirect", testOpenRedirect},
		{"OversizedAndMalformed", testOversizedAndMalformed},
		{"CodeBoundToClient", testCodeBoundToClient},
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) { tc.run(t, newHarness(t, b)) })
		}
	})
}

func wantError(t *testing.T, what string, st int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if st != wantStatus || body["error"] != wantCode {
		t.Fatalf("%s: got %d %v, want %d %s", what, st, body, wantStatus, wantCode)
	}
}

func testCodeReplay(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	h.newUser("replay@example.com", false)
	v, ch := pkce("replay")
	code := h.code(h.browser(), c, "replay@example.com", ch)
	st, tok := h.exchange(c, code, v)
	if st != 200 {
		t.Fatalf("first exchange: %d %v", st, tok)
	}
	if h.call(tok["access_token"].(string)) != 200 {
		t.Fatal("token refused before replay")
	}
	st, body := h.exchange(c, code, v)
	wantError(t, "replay", st, body, 400, "invalid_grant")
	if got := h.call(tok["access_token"].(string)); got != 401 {
		t.Fatalf("access token issued from a replayed code still accepted: %d", got)
	}
	st, body = h.refresh(c, tok["refresh_token"].(string))
	wantError(t, "refresh after replay", st, body, 400, "invalid_grant")
}

func testConcurrentRedemption(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	h.newUser("race@example.com", false)
	v, ch := pkce("race")
	code := h.code(h.browser(), c, "race@example.com", ch)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok      int
		granted []string
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body := h.exchange(c, code, v)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case st == 200:
				ok++
				granted = append(granted, body["access_token"].(string))
			case st != 400 || body["error"] != "invalid_grant":
				t.Errorf("redemption: %d %v", st, body)
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d of 20 concurrent redemptions succeeded, want exactly 1", ok)
	}
	// The 19 others were replays: the one token issued is revoked too,
	// even if it was minted after a replay revoked the grant.
	if got := h.call(granted[0]); got != 401 {
		t.Fatalf("token of a replayed code accepted: %d", got)
	}
}

func testWrongVerifier(t *testing.T, h *harness) {
	c := h.register(true, "http://127.0.0.1:8123/cb")
	h.newUser("verifier@example.com", false)
	v, ch := pkce("right")
	code := h.code(h.browser(), c, "verifier@example.com", ch)
	wrong, _ := pkce("wrong")
	st, body := h.exchange(c, code, wrong)
	wantError(t, "wrong verifier", st, body, 400, "invalid_grant")
	// The failed attempt spent the code: no second guess.
	st, body = h.exchange(c, code, v)
	wantError(t, "right verifier after a wrong one", st, body, 400, "invalid_grant")
	st, body = h.exchange(c, code, "")
	wantError(t, "no verifier", st, body, 400, "invalid_request")
}

// authorizeRedirect fetches an authorization URL with a signed-in browser
// and returns the redirect it answers (or fails if it does not redirect
// to the client).
func authorizeRedirect(t *testing.T, h *harness, b *browser, u string) url.Values {
	t.Helper()
	resp, page := b.get(u)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: %d %.300s", u, resp.StatusCode, page)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Host != "app.example.com" {
		t.Fatalf("redirected to %s", loc)
	}
	return loc.Query()
}

func testMissingPKCE(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	q := authorizeRedirect(t, h, h.browser(), h.authURL(c, "", url.Values{"code_challenge": nil, "code_challenge_method": nil}))
	if q.Get("error") != "invalid_request" || q.Get("code") != "" || q.Get("state") != "st-123" || q.Get("iss") != h.issuer {
		t.Fatalf("missing PKCE: %v", q)
	}
	// A challenge without method is plain by default: refused too.
	_, ch := pkce("x")
	q = authorizeRedirect(t, h, h.browser(), h.authURL(c, ch, url.Values{"code_challenge_method": nil}))
	if q.Get("error") != "invalid_request" {
		t.Fatalf("challenge without method: %v", q)
	}
	// And no code_verifier at the token endpoint for a code is refused
	// before the code is looked at.
	st, body := h.exchange(c, "some-code", "")
	wantError(t, "token without verifier", st, body, 400, "invalid_request")
}

func testPlainPKCE(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	v, _ := pkce("plain")
	q := authorizeRedirect(t, h, h.browser(), h.authURL(c, v, url.Values{"code_challenge_method": {"plain"}}))
	if q.Get("error") != "invalid_request" || !strings.Contains(q.Get("error_description"), "S256") {
		t.Fatalf("plain: %v", q)
	}
}

// wantErrorPage asserts an error page and, above all, no redirect.
func wantErrorPage(t *testing.T, b *browser, u string) {
	t.Helper()
	resp, page := b.get(u)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || resp.Request.URL.Host != strings.TrimPrefix(b.h.issuer, "http://") {
		t.Fatalf("GET %s: %d Location %q", u, resp.StatusCode, resp.Header.Get("Location"))
	}
	if !strings.Contains(page, "cannot be completed") {
		t.Fatalf("no error page: %.300s", page)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("page headers: %v", resp.Header)
	}
}

func testRedirectMismatch(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	h.newUser("mismatch@example.com", false)
	b := h.browser()
	b.login("mismatch@example.com")
	_, ch := pkce("m")
	for _, r := range []string{
		"https://evil.example.com/cb",
		"https://app.example.com/cb/",
		"https://app.example.com/cb?x=1",
		"https://app.example.com/CB",
		"http://app.example.com/cb",
		"https://app.example.com/cb#x",
		"https://app.example.com.evil.example/cb",
	} {
		wantErrorPage(t, b, h.authURL(c, ch, url.Values{"redirect_uri": {r}}))
	}
	// Also from the consent form: tampering with the hidden field.
	_, page := b.get(h.authURL(c, ch, nil))
	f := hiddenFields(page, "/authorize")
	f.Set("redirect_uri", "https://evil.example.com/cb")
	f.Set("decision", "approve")
	resp, _ := b.post(h.issuer+"/authorize", f)
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("tampered consent: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func testUnknownClient(t *testing.T, h *harness) {
	b := h.browser()
	_, ch := pkce("u")
	unknown := client{ID: uuid.NewString(), Redirect: "https://app.example.com/cb"}
	wantErrorPage(t, b, h.authURL(unknown, ch, nil))
	wantErrorPage(t, b, h.authURL(client{ID: "not-a-uuid", Redirect: "https://app.example.com/cb"}, ch, nil))
	wantErrorPage(t, b, h.authURL(client{Redirect: "https://app.example.com/cb"}, ch, url.Values{"client_id": nil}))
	st, body, _ := h.postForm("/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {strings.Repeat("a", 43)}, "client_id": {unknown.ID}}, "", "")
	wantError(t, "token for unknown client", st, body, 401, "invalid_client")
	st, body, _ = h.postForm("/token", url.Values{"grant_type": {"authorization_code"}}, unknown.ID, "secret")
	wantError(t, "basic auth of unknown client", st, body, 401, "invalid_client")
}

func testWrongSecret(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	h.newUser("secret@example.com", false)
	v, ch := pkce("s")
	code := h.code(h.browser(), c, "secret@example.com", ch)
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.Redirect}, "code_verifier": {v}}
	st, body, hdr := h.postForm("/token", f, c.ID, c.Secret+"x")
	wantError(t, "wrong basic secret", st, body, 401, "invalid_client")
	if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers: %v", hdr)
	}
	f2 := url.Values{"client_id": {c.ID}, "client_secret": {"wrong"}}
	for k, vv := range f {
		f2[k] = vv
	}
	st, body, _ = h.postForm("/token", f2, "", "")
	wantError(t, "wrong post secret", st, body, 401, "invalid_client")
	f2.Del("client_secret")
	st, body, _ = h.postForm("/token", f2, "", "")
	wantError(t, "confidential client without secret", st, body, 401, "invalid_client")
	// client_secret_post with the right secret works; the code was not
	// spent by failed client authentication.
	f2.Set("client_secret", c.Secret)
	if st, body, _ = h.postForm("/token", f2, "", ""); st != 200 {
		t.Fatalf("client_secret_post: %d %v", st, body)
	}
}

func testExpiredCode(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	h.newUser("expired@example.com", false)
	v, ch := pkce("e")
	code := h.code(h.browser(), c, "expired@example.com", ch)
	h.clock.Advance(61 * time.Second)
	st, body := h.exchange(c, code, v)
	wantError(t, "expired code", st, body, 400, "invalid_grant")
}

func testRefreshReuse(t *testing.T, h *harness) {
	c, _, tok := h.tokens(true, "reuse@example.com")
	rt1 := tok["refresh_token"].(string)
	st, tok2 := h.refresh(c, rt1)
	if st != 200 {
		t.Fatalf("first refresh: %d %v", st, tok2)
	}
	st, body := h.refresh(c, rt1)
	wantError(t, "reuse of rotated token", st, body, 400, "invalid_grant")
	// The whole family is gone: the current refresh token and every
	// access token of the grant.
	st, body = h.refresh(c, tok2["refresh_token"].(string))
	wantError(t, "refresh with the newest token after reuse", st, body, 400, "invalid_grant")
	for _, a := range []any{tok["access_token"], tok2["access_token"]} {
		if got := h.call(a.(string)); got != 401 {
			t.Fatalf("access token of a revoked family accepted: %d", got)
		}
	}
}

func testRevokedAccessToken(t *testing.T, h *harness) {
	c, _, tok := h.tokens(true, "revoked@example.com")
	access := tok["access_token"].(string)
	st, _, _ := h.postForm("/revoke", url.Values{"token": {access}, "client_id": {c.ID}}, "", "")
	if st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if got := h.call(access); got != 401 {
		t.Fatalf("revoked token accepted: %d", got)
	}
	// Another instance over the same database sees it too (fresh cache).
	other := newUnstartedOn(t, h)
	if _, err := other.Verify(h.ctx, access); err == nil {
		t.Fatal("second instance accepted a revoked token")
	}
	// The refresh token of the grant still works: RFC 7009 revokes just
	// the access token when that is what was presented.
	if st, body := h.refresh(c, tok["refresh_token"].(string)); st != 200 {
		t.Fatalf("refresh after access token revocation: %d %v", st, body)
	}
}

// sign makes a JWT with the harness key (or another), to test what
// Verify does with tokens this server did not issue in this shape.
func (h *harness) sign(t *testing.T, mutate func(b *jwt.Builder), key any) string {
	t.Helper()
	now := h.clock.Now()
	b := jwt.NewBuilder().Issuer(h.issuer).Subject(uuid.NewString()).Audience([]string{h.resource}).
		IssuedAt(now).Expiration(now.Add(time.Hour)).JwtID(uuid.NewString()).Claim("scope", "memories:read").Claim("client_id", "x")
	if mutate != nil {
		mutate(b)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if key == nil {
		key = h.key
	}
	jk, err := jwk.Import(key)
	if err != nil {
		t.Fatal(err)
	}
	_ = jk.Set(jwk.KeyIDKey, h.keys.KeyIDs()[0])
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), jk))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func testOtherAudience(t *testing.T, h *harness) {
	// A token of this issuer and key for another resource.
	tok := h.sign(t, func(b *jwt.Builder) { b.Audience([]string{"https://other.example.com/mcp"}) }, nil)
	if got := h.call(tok); got != 401 {
		t.Fatalf("token for another audience accepted: %d", got)
	}
	// Asking for another resource is refused at /authorize and /token.
	c := h.register(false, "https://app.example.com/cb")
	_, ch := pkce("aud")
	q := authorizeRedirect(t, h, h.browser(), h.authURL(c, ch, url.Values{"resource": {"https://other.example.com/mcp"}}))
	if q.Get("error") != "invalid_target" {
		t.Fatalf("authorize with other resource: %v", q)
	}
	st, body, _ := h.postForm("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "resource": {"https://other.example.com/mcp"}}, c.ID, c.Secret)
	wantError(t, "token with other resource", st, body, 400, "invalid_target")
	// Our own resource, explicitly, is fine and is the audience.
	h.newUser("aud@example.com", false)
	v, ch := pkce("aud2")
	loc := h.browser().authorize(h.authURL(c, ch, url.Values{"resource": {h.resource}}), "aud@example.com", "approve")
	f := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {c.Redirect}, "code_verifier": {v}, "resource": {h.resource}}
	if st, body, _ := h.postForm("/token", f, c.ID, c.Secret); st != 200 || h.call(body["access_token"].(string)) != 200 {
		t.Fatalf("explicit resource: %d %v", st, body)
	}
}

func testForgedTokens(t *testing.T, h *harness) {
	_, u, tok := h.tokens(true, "forged@example.com")
	access := tok["access_token"].(string)
	other, _ := newKeyPair(t)
	cases := map[string]string{
		"other key":       h.sign(t, func(b *jwt.Builder) { b.Subject(u.ID.String()) }, other),
		"other issuer":    h.sign(t, func(b *jwt.Builder) { b.Issuer("https://evil.example.com") }, nil),
		"unknown jti":     h.sign(t, func(b *jwt.Builder) { b.Subject(u.ID.String()) }, nil),
		"expired":         h.sign(t, func(b *jwt.Builder) { b.Expiration(h.clock.Now().Add(-time.Minute)) }, nil),
		"tampered":        access[:len(access)-4] + "AAAA",
		"alg none":        "eyJhbGciOiJub25lIn0." + strings.Split(access, ".")[1] + ".",
		"garbage":         "not-a-jwt",
		"huge":            strings.Repeat("a", 10000),
		"payload swapped": strings.Split(access, ".")[0] + "." + strings.Split(h.sign(t, nil, nil), ".")[1] + "." + strings.Split(access, ".")[2],
	}
	for name, tok := range cases {
		if got := h.call(tok); got != 401 {
			t.Errorf("%s: accepted (%d)", name, got)
		}
	}
	// Expiry leeway: 30 s after exp still good, 31 s not.
	h.clock.Advance(time.Hour + 20*time.Second)
	if got := h.call(access); got != 200 {
		t.Fatalf("token 20 s past exp refused: %d", got)
	}
	h.clock.Advance(15 * time.Second)
	if got := h.call(access); got != 401 {
		t.Fatalf("token 35 s past exp accepted: %d", got)
	}
}

func testDisabledUser(t *testing.T, h *harness) {
	c, u, tok := h.tokens(true, "disabled@example.com")
	access := tok["access_token"].(string)
	if _, err := h.users.SetDisabled(h.ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	// Disabling alone is seen within the one-second state cache...
	h.clock.Advance(2 * time.Second)
	if got := h.call(access); got != 401 {
		t.Fatalf("disabled user's token accepted: %d", got)
	}
	st, body := h.refresh(c, tok["refresh_token"].(string))
	wantError(t, "refresh of disabled user", st, body, 400, "invalid_grant")
	// ...and RevokeUserTokens (what the admin tool calls) makes it stick
	// even after the account is enabled again.
	if n, err := h.srv.RevokeUserTokens(h.ctx, u.ID); err != nil || n != 2 {
		t.Fatalf("RevokeUserTokens: %d, %v (want the access token and the grant)", n, err)
	}
	if _, err := h.users.SetDisabled(h.ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * time.Second)
	if got := h.call(access); got != 401 {
		t.Fatalf("revoked token of re-enabled user accepted: %d", got)
	}
	// Login is refused while disabled.
	if _, err := h.users.SetDisabled(h.ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	b := h.browser()
	_, page := b.get(h.issuer + "/login")
	f := hiddenFields(page, "/login")
	f.Set("email", u.Email)
	f.Set("password", password)
	if resp, _ := b.post(h.issuer+"/login", f); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("disabled login: %d", resp.StatusCode)
	}
}

func testConsentCSRF(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	h.newUser("csrf@example.com", false)
	b := h.browser()
	b.login("csrf@example.com")
	_, ch := pkce("csrf")
	_, page := b.get(h.authURL(c, ch, nil))
	f := hiddenFields(page, "/authorize")
	if f.Get("csrf_token") == "" {
		t.Fatalf("consent page without CSRF token: %.500s", page)
	}
	for name, mutate := range map[string]func(url.Values){
		"missing": func(v url.Values) { v.Del("csrf_token") },
		"wrong":   func(v url.Values) { v.Set("csrf_token", "x"+v.Get("csrf_token")[1:]) },
	} {
		g := url.Values{}
		for k, v := range f {
			g[k] = v
		}
		mutate(g)
		g.Set("decision", "approve")
		resp, _ := b.post(h.issuer+"/authorize", g)
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
			t.Fatalf("%s CSRF token: %d %s", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// A cross-site post carrying the victim's cookies but an attacker's
	// page: the Origin gives it away even with a valid-looking form.
	g := url.Values{}
	for k, v := range f {
		g[k] = v
	}
	g.Set("decision", "approve")
	req, _ := http.NewRequest(http.MethodPost, h.issuer+"/authorize", strings.NewReader(g.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example.com")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin consent: %d", resp.StatusCode)
	}
	// Another user's browser cannot use this user's form.
	h.newUser("other@example.com", false)
	o := h.browser()
	o.login("other@example.com")
	if resp, _ := o.post(h.issuer+"/authorize", g); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("other session's consent: %d", resp.StatusCode)
	}
	// No session at all.
	if resp, _ := h.browser().post(h.issuer+"/authorize", g); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("consent without session: %d", resp.StatusCode)
	}
	// Deny sends access_denied.
	g.Set("decision", "deny")
	resp, _ = b.post(h.issuer+"/authorize", g)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != "access_denied" || loc.Query().Get("iss") != h.issuer {
		t.Fatalf("deny: %d %s", resp.StatusCode, loc)
	}
}

func testOpenRedirect(t *testing.T, h *harness) {
	h.newUser("redir@example.com", false)
	for _, rt := range []string{
		"https://evil.example.com/", "//evil.example.com/", "/\\evil.example.com", "/%2F%2Fevil.example.com",
		"javascript:alert(1)", "/login?return_to=https://evil.example.com", "/authorize/../..//evil.example.com",
		"\thttps://evil.example.com",
	} {
		b := h.browser()
		_, page := b.get(h.issuer + "/login?return_to=" + url.QueryEscape(rt))
		f := hiddenFields(page, "/login")
		f.Set("email", "redir@example.com")
		f.Set("password", password)
		f.Set("return_to", rt)
		resp, _ := b.post(h.issuer+"/login", f)
		if resp.Request.URL.Host != strings.TrimPrefix(h.issuer, "http://") || resp.Request.URL.Path != "/account" {
			t.Errorf("return_to %q led to %s", rt, resp.Request.URL)
		}
	}
	// A registered loopback redirect accepts another port (RFC 8252 §7.3)
	// but not another host or path.
	c := h.register(true, "http://127.0.0.1/cb")
	b := h.browser()
	b.login("redir@example.com")
	_, ch := pkce("loop")
	loc := b.authorize(h.authURL(c, ch, url.Values{"redirect_uri": {"http://127.0.0.1:54321/cb"}}), "redir@example.com", "approve")
	if loc.Host != "127.0.0.1:54321" || loc.Query().Get("code") == "" {
		t.Fatalf("loopback port: %s", loc)
	}
	wantErrorPage(t, b, h.authURL(c, ch, url.Values{"redirect_uri": {"http://127.0.0.1:54321/other"}}))
	wantErrorPage(t, b, h.authURL(c, ch, url.Values{"redirect_uri": {"http://127.0.0.2:54321/cb"}}))
	wantErrorPage(t, b, h.authURL(c, ch, url.Values{"redirect_uri": {"http://localhost.evil.example/cb"}}))
}

func testOversizedAndMalformed(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	b := h.browser()
	_, ch := pkce("big")
	// The query is too large to trust at all: an error page.
	wantErrorPage(t, b, h.authURL(c, ch, url.Values{"scope": {strings.Repeat("memories:read ", 700)}}))
	// Repeated client_id: ambiguous, error page.
	wantErrorPage(t, b, h.authURL(c, ch, nil)+"&client_id="+uuid.NewString())
	// State too long: refused and not echoed.
	q := authorizeRedirect(t, h, b, h.authURL(c, ch, url.Values{"state": {strings.Repeat("s", 2000)}}))
	if q.Get("error") != "invalid_request" || q.Get("state") != "" {
		t.Fatalf("long state: %v", q)
	}
	for name, extra := range map[string]url.Values{
		"response_type token": {"response_type": {"token"}},
		"no response_type":    {"response_type": nil},
		"bad scope":           {"scope": {"memories:read openid"}},
		"short challenge":     {"code_challenge": {"abc"}},
		"bad prompt":          {"prompt": {"select_account"}},
	} {
		q := authorizeRedirect(t, h, b, h.authURL(c, ch, extra))
		if q.Get("error") == "" || q.Get("code") != "" || q.Get("state") != "st-123" {
			t.Errorf("%s: %v", name, q)
		}
	}
	q = authorizeRedirect(t, h, b, h.authURL(c, ch, nil)+"&scope=memories:read")
	if q.Get("error") != "invalid_request" {
		t.Fatalf("repeated scope: %v", q)
	}
	// Token endpoint.
	post := func(ct, body string, basic bool) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, h.issuer+"/token", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if basic {
			req.SetBasicAuth(c.ID, c.Secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		decode(t, resp, &m)
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("token error without no-store")
		}
		e, _ := m["error"].(string)
		return resp.StatusCode, e
	}
	for name, tc := range map[string]struct {
		ct, body string
		basic    bool
		status   int
		code     string
	}{
		"json body":          {"application/json", `{"grant_type":"authorization_code"}`, true, 400, "invalid_request"},
		"oversized":          {"application/x-www-form-urlencoded", "grant_type=authorization_code&code=" + strings.Repeat("a", 70<<10), true, 400, "invalid_request"},
		"repeated parameter": {"application/x-www-form-urlencoded", "grant_type=authorization_code&grant_type=refresh_token", true, 400, "invalid_request"},
		"bad encoding":       {"application/x-www-form-urlencoded", "grant_type=%zz", true, 400, "invalid_request"},
		"unknown grant":      {"application/x-www-form-urlencoded", "grant_type=password&username=a&password=b", true, 400, "unsupported_grant_type"},
		"no grant":           {"application/x-www-form-urlencoded", "code=x", true, 400, "invalid_request"},
		"short verifier":     {"application/x-www-form-urlencoded", "grant_type=authorization_code&code=x&code_verifier=short", true, 400, "invalid_request"},
		"no client":          {"application/x-www-form-urlencoded", "grant_type=authorization_code&code=x", false, 401, "invalid_client"},
		"two auth methods":   {"application/x-www-form-urlencoded", "grant_type=authorization_code&client_secret=x", true, 400, "invalid_request"},
	} {
		if st, code := post(tc.ct, tc.body, tc.basic); st != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", name, st, code, tc.status, tc.code)
		}
	}
}

func testCodeBoundToClient(t *testing.T, h *harness) {
	c := h.register(false, "https://app.example.com/cb")
	other := h.register(false, "https://app.example.com/cb")
	h.newUser("bound@example.com", false)
	v, ch := pkce("bound")
	code := h.code(h.browser(), c, "bound@example.com", ch)
	st, body := h.exchange(other, code, v)
	wantError(t, "code of another client", st, body, 400, "invalid_grant")

	code = h.code(h.browser(), c, "bound@example.com", ch)
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example.com/other"}, "code_verifier": {v}}
	st, body, _ = h.postForm("/token", f, c.ID, c.Secret)
	wantError(t, "code with another redirect_uri", st, body, 400, "invalid_grant")

	// Refresh tokens are bound to their client too.
	code = h.code(h.browser(), c, "bound@example.com", ch)
	_, tok := h.exchange(c, code, v)
	st, body = h.refresh(other, tok["refresh_token"].(string))
	wantError(t, "refresh token of another client", st, body, 400, "invalid_grant")
	if st, _ := h.refresh(c, tok["refresh_token"].(string)); st != 200 {
		t.Fatalf("own refresh after a foreign attempt: %d", st)
	}
}

package oauth_test

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"picard.dev/mcpserver/internal/oauth"
	"picard.dev/mcpserver/internal/user"
)

func TestAccount(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"LoginSameAnswer", testLoginSameAnswer},
		{"LoginRateLimit", nil},
		{"Signup", testSignup},
		{"PersonalTokens", testPersonalTokens},
		{"ConnectedApps", testConnectedApps},
		{"ProfileAndPassword", testProfileAndPassword},
		{"DeleteAccount", testDeleteAccount},
		{"AccountCSRF", testAccountCSRF},
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.run == nil {
					testLoginRateLimit(t, b)
					return
				}
				tc.run(t, newHarness(t, b))
			})
		}
	})
}

func (b *browser) loginAttempt(email, pw string) (*http.Response, string) {
	_, page := b.get(b.h.issuer + "/login")
	f := hiddenFields(page, "/login")
	f.Set("email", email)
	f.Set("password", pw)
	return b.post(b.h.issuer+"/login", f)
}

var errorDivRe = regexp.MustCompile(`<div class="error" role="alert">([^<]*)</div>`)

func testLoginSameAnswer(t *testing.T, h *harness) {
	h.newUser("known@example.com", false)
	r1, p1 := h.browser().loginAttempt("known@example.com", "wrong password")
	r2, p2 := h.browser().loginAttempt("unknown@example.com", "wrong password")
	m1, m2 := errorDivRe.FindStringSubmatch(p1), errorDivRe.FindStringSubmatch(p2)
	if r1.StatusCode != r2.StatusCode || m1 == nil || m2 == nil || m1[1] != m2[1] {
		t.Fatalf("answers differ: %d %v / %d %v", r1.StatusCode, m1, r2.StatusCode, m2)
	}
	// Without the CSRF cookie the form is refused.
	resp, err := http.PostForm(h.issuer+"/login", url.Values{"email": {"known@example.com"}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without CSRF: %d", resp.StatusCode)
	}
	// The session cookie has the promised attributes.
	b := h.browser()
	resp, _ = b.loginAttempt("known@example.com", password)
	var found bool
	for _, c := range resp.Request.Response.Cookies() {
		if c.Name == oauth.SessionCookie {
			found = c.HttpOnly && c.SameSite == http.SameSiteLaxMode && !c.Secure // http issuer
		}
	}
	if !found {
		t.Fatalf("session cookie missing or wrong: %v", resp.Request.Response.Header["Set-Cookie"])
	}
}

func testLoginRateLimit(t *testing.T, b backend) {
	h := newUnstarted(t, b, func(o *oauth.Options) { o.LoginPerMinute = 8 }, nil)
	h.http.Start()
	h.newUser("limited@example.com", false)
	br := h.browser()
	var last int
	// Per account: 4 attempts of burst (LoginPerMinute/2).
	for range 5 {
		resp, _ := br.loginAttempt("limited@example.com", "wrong password")
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("fifth failed login for one account: %d", last)
	}
	// The right password is refused too while limited.
	if resp, _ := br.loginAttempt("limited@example.com", password); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("limited account: %d", resp.StatusCode)
	}
	// Per address: other accounts from the same address run out too.
	for i := range 4 {
		resp, _ := br.loginAttempt("someone"+string(rune('a'+i))+"@example.com", "x")
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("address limit: %d", last)
	}
}

func testSignup(t *testing.T, h *harness) {
	b := h.browser()
	_, page := b.get(h.issuer + "/signup")
	f := hiddenFields(page, "/signup")
	f.Set("email", "new@example.com")
	f.Set("password", "long enough password")
	f.Set("password_confirm", "different password")
	if resp, _ := b.post(h.issuer+"/signup", f); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("mismatched passwords: %d", resp.StatusCode)
	}
	f.Set("password_confirm", "long enough password")
	resp, page := b.post(h.issuer+"/signup", f)
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/account" || !strings.Contains(page, "new@example.com") {
		t.Fatalf("signup: %d %s", resp.StatusCode, resp.Request.URL)
	}
	f2 := hiddenFields(page, "/account/profile")
	_ = f2
	b2 := h.browser()
	_, page = b2.get(h.issuer + "/signup")
	f = hiddenFields(page, "/signup")
	f.Set("email", "NEW@example.com")
	f.Set("password", "another long password")
	if resp, _ := b2.post(h.issuer+"/signup", f); resp.StatusCode != http.StatusConflict {
		t.Fatalf("duplicate signup: %d", resp.StatusCode)
	}
}

// accountForm posts one of the account forms with the page's CSRF token.
func (b *browser) accountForm(action string, fields url.Values) (*http.Response, string) {
	b.h.t.Helper()
	_, page := b.get(b.h.issuer + "/account")
	f := hiddenFields(page, action)
	if f == nil {
		b.h.t.Fatalf("no form %s on the account page", action)
	}
	for k, v := range fields {
		f[k] = v
	}
	return b.post(b.h.issuer+action, f)
}

var secretRe = regexp.MustCompile(`<code class="secret">([^<]+)</code>`)

func testPersonalTokens(t *testing.T, h *harness) {
	u := h.newUser("pat@example.com", false)
	b := h.browser()
	b.login(u.Email)
	resp, page := b.accountForm("/account/tokens", url.Values{"name": {"laptop"}, "scope": {"memories:read", "memories:write"}, "ttl": {"720h"}})
	m := secretRe.FindStringSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("create PAT: %d %.300s", resp.StatusCode, page)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatal("page with a new token may be cached")
	}
	pat := m[1]
	id, err := h.srv.Verify(h.ctx, pat)
	if err != nil || id.ClientID != oauth.PATClientID || id.UserID != u.ID || strings.Join(id.Scopes, " ") != "memories:read memories:write" {
		t.Fatalf("PAT identity %+v %v", id, err)
	}
	if d := id.Expiry.Sub(h.clock.Now()); d < 719*time.Hour || d > 721*time.Hour {
		t.Fatalf("PAT lifetime %s", d)
	}
	// Listed, shown once.
	_, page = b.get(h.issuer + "/account")
	if !strings.Contains(page, "laptop") || strings.Contains(page, pat) {
		t.Fatal("PAT not listed, or shown again")
	}
	// memories:admin is refused for a non-admin.
	if resp, _ := b.accountForm("/account/tokens", url.Values{"name": {"x"}, "scope": {"memories:admin"}, "ttl": {"24h"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("admin scope PAT: %d", resp.StatusCode)
	}
	// Revoke from the page.
	_, page = b.get(h.issuer + "/account")
	f := hiddenFields(page, "/account/tokens/revoke")
	if resp, _ := b.post(h.issuer+"/account/tokens/revoke", f); resp.StatusCode != 200 {
		t.Fatalf("revoke PAT: %d", resp.StatusCode)
	}
	if h.call(pat) != 401 {
		t.Fatal("revoked PAT accepted")
	}
	// The CLI path.
	cli, err := h.srv.IssuePersonalToken(h.ctx, u.ID, []string{"memories:read"}, time.Hour)
	if err != nil || h.call(cli) != 200 {
		t.Fatalf("IssuePersonalToken: %v", err)
	}
	for _, bad := range []struct {
		scopes []string
		ttl    time.Duration
	}{{nil, time.Hour}, {[]string{"openid"}, time.Hour}, {[]string{"memories:read"}, 0}, {[]string{"memories:read"}, 400 * 24 * time.Hour}, {[]string{"memories:admin"}, time.Hour}} {
		if _, err := h.srv.IssuePersonalToken(h.ctx, u.ID, bad.scopes, bad.ttl); !errors.Is(err, oauth.ErrInvalidPAT) {
			t.Errorf("IssuePersonalToken(%v, %s): %v", bad.scopes, bad.ttl, err)
		}
	}
	admin := h.newUser("admin@example.com", true)
	if tok, err := h.srv.IssuePersonalToken(h.ctx, admin.ID, []string{"memories:admin", "memories:read"}, time.Hour); err != nil {
		t.Fatal(err)
	} else if id, err := h.srv.Verify(h.ctx, tok); err != nil || !id.Admin || !id.HasScope("memories:admin") {
		t.Fatalf("admin PAT: %+v %v", id, err)
	}
	// Another user cannot revoke this user's token.
	if _, err := h.srv.RevokeUserTokens(h.ctx, admin.ID); err != nil {
		t.Fatal(err)
	}
	if h.call(cli) != 200 {
		t.Fatal("revoking another user's tokens touched this one")
	}
}

func testConnectedApps(t *testing.T, h *harness) {
	c, u, tok := h.tokens(false, "apps@example.com")
	b := h.browser()
	b.login(u.Email)
	_, page := b.get(h.issuer + "/account")
	if !strings.Contains(page, "Test Client") || !strings.Contains(page, c.ID) {
		t.Fatalf("app not listed: %.2000s", page)
	}
	if resp, _ := b.accountForm("/account/apps/revoke", nil); resp.StatusCode != 200 {
		t.Fatalf("disconnect: %d", resp.StatusCode)
	}
	if h.call(tok["access_token"].(string)) != 401 {
		t.Fatal("token of a disconnected app accepted")
	}
	if st, _ := h.refresh(c, tok["refresh_token"].(string)); st != 400 {
		t.Fatal("refresh of a disconnected app accepted")
	}
	// Consent is asked again.
	_, ch := pkce("again")
	_, page = b.get(h.authURL(c, ch, nil))
	if !strings.Contains(page, `name="decision"`) {
		t.Fatal("consent not asked again after disconnecting")
	}
	// Activity lists what happened.
	_, page = b.get(h.issuer + "/account")
	for _, a := range []string{"login", "consent:grant", "token:issue", "consent:revoke"} {
		if !strings.Contains(page, "<td>"+a+"</td>") {
			t.Errorf("activity %s not shown", a)
		}
	}
}

func testProfileAndPassword(t *testing.T, h *harness) {
	u := h.newUser("profile@example.com", false)
	b := h.browser()
	b.login(u.Email)
	other := h.browser()
	other.login(u.Email)
	if resp, _ := b.accountForm("/account/profile", url.Values{"name": {"Jean-Luc"}, "email": {"jl@example.com"}}); resp.StatusCode != 200 {
		t.Fatalf("profile: %d", resp.StatusCode)
	}
	got, _ := h.users.Get(h.ctx, u.ID)
	if got.Name != "Jean-Luc" || got.Email != "jl@example.com" {
		t.Fatalf("profile not saved: %+v", got)
	}
	if resp, _ := b.accountForm("/account/password", url.Values{"current_password": {"wrong"}, "new_password": {"a new password"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("password change with wrong current password: %d", resp.StatusCode)
	}
	if resp, _ := b.accountForm("/account/password", url.Values{"current_password": {password}, "new_password": {"a new password"}}); resp.StatusCode != 200 {
		t.Fatalf("password change: %d", resp.StatusCode)
	}
	if _, err := h.users.Authenticate(h.ctx, "jl@example.com", "a new password"); err != nil {
		t.Fatal(err)
	}
	// The other session ended; this one lives on.
	if resp, _ := other.get(h.issuer + "/account"); resp.Request.URL.Path != "/login" {
		t.Fatalf("other session still signed in: %s", resp.Request.URL)
	}
	if resp, _ := b.get(h.issuer + "/account"); resp.Request.URL.Path != "/account" {
		t.Fatal("own session ended")
	}
	// Logout.
	_, page := b.get(h.issuer + "/account")
	if resp, _ := b.post(h.issuer+"/logout", hiddenFields(page, "/logout")); resp.Request.URL.Path != "/login" {
		t.Fatalf("logout: %s", resp.Request.URL)
	}
	if resp, _ := b.get(h.issuer + "/account"); resp.Request.URL.Path != "/login" {
		t.Fatal("still signed in after logout")
	}
}

func testDeleteAccount(t *testing.T, h *harness) {
	c, u, tok := h.tokens(true, "delete@example.com")
	b := h.browser()
	b.login(u.Email)
	_, page := b.get(h.issuer + "/account")
	if !strings.Contains(page, "export your memories") && !strings.Contains(page, "download your memories") {
		t.Fatal("no export offered before deletion")
	}
	if resp, _ := b.accountForm("/account/delete", url.Values{"password": {"wrong"}, "confirm": {"yes"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("delete with wrong password: %d", resp.StatusCode)
	}
	if resp, _ := b.accountForm("/account/delete", url.Values{"password": {password}, "confirm": {"yes"}}); resp.StatusCode != 200 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if _, err := h.users.Get(h.ctx, u.ID); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("user still there: %v", err)
	}
	if h.call(tok["access_token"].(string)) != 401 {
		t.Fatal("token of a deleted account accepted")
	}
	if st, _ := h.refresh(c, tok["refresh_token"].(string)); st != 400 {
		t.Fatal("refresh of a deleted account accepted")
	}
	if resp, _ := b.get(h.issuer + "/account"); resp.Request.URL.Path != "/login" {
		t.Fatal("deleted account still signed in")
	}
}

func testAccountCSRF(t *testing.T, h *harness) {
	u := h.newUser("acsrf@example.com", false)
	b := h.browser()
	b.login(u.Email)
	for _, action := range []string{"/account/profile", "/account/password", "/account/tokens", "/account/delete", "/account/apps/revoke", "/logout"} {
		resp, _ := b.post(h.issuer+action, url.Values{"csrf_token": {"forged"}, "name": {"x"}, "email": {"evil@example.com"}, "password": {password}, "confirm": {"yes"}, "ttl": {"24h"}, "scope": {"memories:read"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s with a forged CSRF token: %d", action, resp.StatusCode)
		}
	}
	if got, _ := h.users.Get(h.ctx, u.ID); got == nil || got.Email != u.Email {
		t.Fatal("a forged form changed the account")
	}
}

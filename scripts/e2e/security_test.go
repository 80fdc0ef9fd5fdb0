package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestWebClientSecurity checks, over plain HTTP against the real stack,
// that the web client refuses forms without this browser's CSRF token and
// gives a new session identifier at every login (session fixation).
func TestWebClientSecurity(t *testing.T) {
	t.Parallel()
	st := startWebStack(t)
	base, _ := url.Parse(st.WebURL)
	const (
		email    = "carol@example.com"
		password = "carol-secret-pw-3"
	)

	sessionOf := func(b *formBrowser) string {
		for _, c := range b.client.Jar.Cookies(base) {
			if c.Name == "picard_web_session" {
				return c.Value
			}
		}
		return ""
	}
	csrfOf := func(p page) string {
		for _, f := range mustForms(t, p) {
			if v := f.Values.Get("csrf_token"); v != "" {
				return v
			}
		}
		t.Fatalf("no CSRF token on %s", p.URL)
		return ""
	}

	// Sign-up without the token is refused and creates nothing.
	carol := newFormBrowser(t)
	p := carol.get(st.WebURL + "/signup")
	f := carol.form(p, "/signup")
	creds := url.Values{"email": {email}, "password": {password}, "password_confirm": {password}}
	withoutToken := url.Values{"csrf_token": {""}}
	for k, v := range creds {
		withoutToken[k] = v
	}
	if r := carol.submit(p, f, withoutToken); r.Status != http.StatusForbidden {
		t.Errorf("sign-up without CSRF token: %d, want 403", r.Status)
	}
	preSession := ""
	for _, c := range carol.client.Jar.Cookies(base) {
		if c.Name == "picard_web_csrf" {
			preSession = c.Value
		}
	}
	r := carol.submit(p, f, creds)
	if r.Status != http.StatusOK || r.URL.Path != "/connect" {
		t.Fatalf("sign-up: %d %s", r.Status, r.URL)
	}
	s1 := sessionOf(carol)
	if s1 == "" || s1 == preSession {
		t.Fatalf("sign-up session %q (pre-session cookie %q)", s1, preSession)
	}
	if x, ok := st.front.find(http.MethodPost, "/signup", ""); ok {
		for _, sc := range x.Header.Values("Set-Cookie") {
			if strings.HasPrefix(sc, "picard_web_session=") && (!strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax")) {
				t.Errorf("session cookie lacks HttpOnly or SameSite=Lax: %s", sc)
			}
		}
	}

	// State-changing requests of a signed-in user need the token of that
	// session: none, a made-up one, or another session's are refused.
	account := carol.get(st.WebURL + "/account")
	token := csrfOf(account)
	dave := newFormBrowser(t)
	dp := dave.get(st.WebURL + "/signup")
	dave.submit(dp, dave.form(dp, "/signup"), url.Values{"email": {"dave@example.com"}, "password": {password}, "password_confirm": {password}})
	daveToken := csrfOf(dave.get(st.WebURL + "/account"))
	for _, path := range []string{"/memories", "/oauth/disconnect", "/logout", "/account/password", "/import"} {
		for name, tok := range map[string]string{"no token": "", "made-up token": strings.Repeat("A", len(token)), "another session's token": daveToken} {
			r := carol.submit(account, htmlForm{Action: path, Values: url.Values{"csrf_token": {tok}, "text": {"csrf"}}}, nil)
			if r.Status != http.StatusForbidden {
				t.Errorf("POST %s with %s: %d, want 403", path, name, r.Status)
			}
		}
	}
	if sessionOf(carol) != s1 {
		t.Fatalf("a refused logout changed the session")
	}

	// Logging in again, even with a valid session, issues a new
	// identifier and ends the old one.
	r = carol.submit(account, htmlForm{Action: "/login", Values: url.Values{"csrf_token": {token}}}, url.Values{"email": {email}, "password": {password}})
	if r.Status != http.StatusOK {
		t.Fatalf("login: %d %s", r.Status, r.URL)
	}
	s2 := sessionOf(carol)
	if s2 == "" || s2 == s1 {
		t.Errorf("session cookie did not change on login (%q → %q)", s1, s2)
	}
	old := newFormBrowser(t)
	old.client.Jar.SetCookies(base, []*http.Cookie{{Name: "picard_web_session", Value: s1, Path: "/"}})
	if r := old.get(st.WebURL + "/account"); r.URL.Path != "/login" {
		t.Errorf("the session from before the login still works: %s", r.URL)
	}

	// An identifier planted in the browser before login is never adopted.
	const planted = "attacker-chosen-session-identifier-0123456789"
	victim := newFormBrowser(t)
	victim.client.Jar.SetCookies(base, []*http.Cookie{{Name: "picard_web_session", Value: planted, Path: "/"}})
	lp := victim.get(st.WebURL + "/login")
	r = victim.submit(lp, victim.form(lp, "/login"), url.Values{"email": {email}, "password": {password}})
	if r.Status != http.StatusOK || r.URL.Path == "/login" {
		t.Fatalf("login with a planted cookie: %d %s", r.Status, r.URL)
	}
	if s := sessionOf(victim); s == "" || s == planted {
		t.Errorf("after login the session is %q (planted %q)", s, planted)
	}
}

func mustForms(t *testing.T, p page) []htmlForm {
	t.Helper()
	forms, err := parseForms(p.Body)
	if err != nil {
		t.Fatal(err)
	}
	return forms
}

package stackcheck

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	var buf bytes.Buffer
	r := NewReport(&buf)
	r.Check("one", func() error { return nil })
	r.Check("two", func() error { return Skip("not here") })
	r.Check("three", func() error { panic("boom") })
	r.Summary()
	want := "PASS one\nSKIP two: not here\nFAIL three: panic: boom\n1 passed, 1 failed\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestForms(t *testing.T) {
	page := []byte(`<html><body>
<form method="post" action="/memories"><input type="hidden" name="csrf_token" value="tok">
<textarea name="text">old</textarea><select name="permission"><option value="private">p</option><option value="public" selected>q</option></select>
<input type="checkbox" name="flag" value="1"><button type="submit" name="decision" value="approve">Allow</button></form>
<form action="/search"><input name="q" type="search"></form></body></html>`)
	forms, err := Forms(page)
	if err != nil || len(forms) != 2 {
		t.Fatalf("got %d forms, %v", len(forms), err)
	}
	f := forms[0]
	if f.Method != "POST" || f.Values.Get("csrf_token") != "tok" || f.Values.Get("text") != "old" || f.Values.Get("permission") != "public" || f.Values.Has("flag") || !f.HasButton("decision", "approve") {
		t.Errorf("form 0 = %+v", f)
	}
	if forms[1].Method != "GET" || !forms[1].Has("q") {
		t.Errorf("form 1 = %+v", forms[1])
	}
}

// TestWalkAuthorization runs the login → consent → redirect walk against a
// small fake of the authorization pages.
func TestWalkAuthorization(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("as_session"); err != nil || c.Value != "ok" {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		w.Write([]byte(`<form method="post" action="/authorize?` + r.URL.RawQuery + `"><input type="hidden" name="csrf" value="c1"><button name="decision" value="approve">Allow</button><button name="decision" value="deny">Deny</button></form>`))
	})
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<form method="post"><input type="hidden" name="next" value="` + r.URL.Query().Get("next") + `"><input name="email"><input type="password" name="password"></form>`))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("email") != "a@example.com" || r.FormValue("password") != "pw" {
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "as_session", Value: "ok", Path: "/"})
		http.Redirect(w, r, r.FormValue("next"), http.StatusSeeOther)
	})
	mux.HandleFunc("POST /authorize", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("csrf") != "c1" {
			http.Error(w, "csrf", http.StatusForbidden)
			return
		}
		q := url.Values{"state": {r.URL.Query().Get("state")}}
		if r.FormValue("decision") == "approve" {
			q.Set("code", "the-code")
		} else {
			q.Set("error", "access_denied")
		}
		http.Redirect(w, r, r.URL.Query().Get("redirect_uri")+"?"+q.Encode(), http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	md := &ASMetadata{AuthorizationEndpoint: srv.URL + "/authorize"}
	c := &Client{ID: "id", RedirectURI: "http://127.0.0.1:9/cb"}
	b := NewBrowser(nil)
	a := NewAuthorization(md, c, "memories:read", "")
	q, err := Authorize(context.Background(), b, c, a, Credentials{"a@example.com", "pw"}, false)
	if err != nil || q.Get("code") != "the-code" {
		t.Fatalf("approve: %v %v", q, err)
	}
	a = NewAuthorization(md, c, "memories:read", "")
	q, err = Authorize(context.Background(), b, c, a, Credentials{"a@example.com", "pw"}, true)
	if err != nil || q.Get("error") != "access_denied" {
		t.Fatalf("deny: %v %v", q, err)
	}
}

func TestVerifyJWT(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	enc := base64.RawURLEncoding.EncodeToString
	js := func(v any) string { b, _ := json.Marshal(v); return enc(b) }
	signing := js(map[string]string{"alg": "ES256", "kid": "k1"}) + "." + js(map[string]any{"iss": "http://x", "aud": "http://x/mcp"})
	sum := sha256.Sum256([]byte(signing))
	r, s, _ := ecdsa.Sign(rand.Reader, key, sum[:])
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	token := signing + "." + enc(sig)
	pub, _ := key.PublicKey.Bytes()
	set := &JWKS{}
	set.Keys = append(set.Keys, JWK{Kty: "EC", Kid: "k1", Crv: "P-256", X: enc(pub[1:33]), Y: enc(pub[33:])})
	claims, err := VerifyJWT(token, set)
	if err != nil || claims["iss"] != "http://x" || audience(claims)[0] != "http://x/mcp" {
		t.Fatalf("%v %v", claims, err)
	}
	if _, err := VerifyJWT(strings.TrimSuffix(token, token[len(token)-4:])+"AAAA", set); err == nil {
		t.Error("a tampered signature verified")
	}
}

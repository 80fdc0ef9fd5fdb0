package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/oauth"
)

// TestClientIDMetadataDocument: a client identified by an https URL whose
// document the server fetches.
func TestClientIDMetadataDocument(t *testing.T) {
	var docs = map[string]any{}
	site := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if s, ok := d.(string); ok {
			w.Write([]byte(s))
			return
		}
		json.NewEncoder(w).Encode(d)
	}))
	defer site.Close()
	good := site.URL + "/client.json"
	docs["/client.json"] = map[string]any{"client_id": good, "client_name": "Metadata Client",
		"redirect_uris": []string{"http://127.0.0.1:7777/cb"}, "token_endpoint_auth_method": "none"}
	docs["/wrong-id.json"] = map[string]any{"client_id": "https://elsewhere.example/x", "redirect_uris": []string{"http://127.0.0.1:7777/cb"}}
	docs["/bad-redirect.json"] = map[string]any{"client_id": site.URL + "/bad-redirect.json", "redirect_uris": []string{"javascript:alert(1)"}}
	docs["/huge.json"] = `{"client_id": "` + strings.Repeat("x", 20<<10) + `"}`

	h := newUnstarted(t, backends()[0], func(o *oauth.Options) { o.MetadataClient = site.Client() }, func(*harness) {})
	h.http.Start()
	h.newUser("cimd@example.com", false)
	c := client{ID: good, Redirect: "http://127.0.0.1:7777/cb"}
	v, ch := pkce("cimd")
	b := h.browser()
	b.login("cimd@example.com")
	_, page := b.get(h.authURL(c, ch, nil))
	if !strings.Contains(page, "Metadata Client") || !strings.Contains(page, "127.0.0.1:7777") {
		t.Fatalf("consent page does not name the client and its redirect host: %.1500s", page)
	}
	code := h.code(b, c, "cimd@example.com", ch)
	if st, body := h.exchange(c, code, v); st != 200 || h.call(body["access_token"].(string)) != 200 {
		t.Fatalf("exchange: %d %v", st, body)
	}
	for _, path := range []string{"/wrong-id.json", "/bad-redirect.json", "/huge.json", "/missing.json"} {
		wantErrorPage(t, b, h.authURL(client{ID: site.URL + path, Redirect: "http://127.0.0.1:7777/cb"}, ch, nil))
	}
	// Not a document URL: plain http, root path, fragments.
	for _, id := range []string{"http://example.com/client.json", site.URL + "/", site.URL + "/c.json#x"} {
		wantErrorPage(t, b, h.authURL(client{ID: id, Redirect: "http://127.0.0.1:7777/cb"}, ch, nil))
	}
}

// TestCIMDRefusesPrivateAddresses: the default fetcher will not connect to
// loopback or private addresses, whatever the URL says.
func TestCIMDRefusesPrivateAddresses(t *testing.T) {
	var hits int
	site := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer site.Close()
	h := newHarness(t, backends()[0]) // default MetadataClient
	_, ch := pkce("ssrf")
	b := h.browser()
	for _, id := range []string{site.URL + "/client.json", "https://localhost:1/client.json", "https://10.0.0.1:1/c.json", "https://[::1]:1/c.json", "https://169.254.169.254/latest/meta-data"} {
		wantErrorPage(t, b, h.authURL(client{ID: id, Redirect: "http://127.0.0.1:7777/cb"}, ch, nil))
	}
	if hits != 0 {
		t.Fatalf("the fetcher reached a loopback server %d times", hits)
	}
	// And the token endpoint says invalid_client for such ids.
	st, body, _ := h.postForm("/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {site.URL + "/client.json"}, "code": {"x"}, "code_verifier": {strings.Repeat("a", 43)}}, "", "")
	wantError(t, "token for unreachable metadata client", st, body, 401, "invalid_client")
	_ = echo.New
}

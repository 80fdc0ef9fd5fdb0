package oauth_test

import (
	"net/url"
	"strings"
	"testing"

	"picard.dev/mcpserver/internal/oauth"
)

func FuzzValidateRedirectURI(f *testing.F) {
	for _, s := range []string{
		"https://app.example.com/cb", "http://127.0.0.1:8080/cb", "http://[::1]/cb", "http://localhost/cb",
		"com.example.app:/oauth", "cursor://callback", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x",
		"file:///etc/passwd", "https://a.example/cb#f", "https://*.example/cb", "http://evil.example/cb",
		"https://user:pw@a.example/cb", " https://a.example", "https://a.example/\x00", "//evil.example/cb",
		"http://127.0.0.1.evil.example/cb", "http://0x7f.0.0.1/cb", "vbscript:x", "myapp:", "https:///path",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if oauth.ValidateRedirectURI(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted unparsable %q", raw)
		}
		scheme := strings.ToLower(u.Scheme)
		switch {
		case strings.ContainsAny(raw, "#* \t\r\n\\"):
			t.Fatalf("accepted fragment, wildcard or space: %q", raw)
		case scheme == "javascript" || scheme == "data" || scheme == "file" || scheme == "vbscript":
			t.Fatalf("accepted dangerous scheme: %q", raw)
		case scheme == "http" && u.Hostname() != "localhost" && u.Hostname() != "127.0.0.1" && u.Hostname() != "::1":
			t.Fatalf("accepted non-loopback http: %q", raw)
		case scheme == "https" && u.Hostname() == "":
			t.Fatalf("accepted https without host: %q", raw)
		case u.User != nil:
			t.Fatalf("accepted user info: %q", raw)
		}
	})
}

func FuzzParseAuthorizeParams(f *testing.F) {
	ok := "response_type=code&client_id=6f1f8f4e-1c1d-4c1e-9a7b-0d4c1f6b9a10&redirect_uri=https%3A%2F%2Fa.example%2Fcb" +
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=x&scope=memories%3Aread"
	for _, s := range []string{ok, "", "client_id=", ok + "&client_id=x", ok + "&state=" + strings.Repeat("s", 1100),
		strings.Replace(ok, "S256", "plain", 1), "%zz", "a=b;c=d", ok + "&scope=memories:admin%20x", ok + "&resource=https://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, pageErr, redirErr := oauth.ParseAuthorizeParams(q)
		if pageErr != nil {
			if !pageErr.Page {
				t.Fatal("page error not marked as such")
			}
			return
		}
		if len(q["client_id"]) != 1 || p.ClientID == "" {
			t.Fatalf("no page error for client_id %q", q["client_id"])
		}
		if redirErr != nil {
			if redirErr.Page || redirErr.Code == "" {
				t.Fatalf("bad redirect error %+v", redirErr)
			}
			if len(p.State) > 1024 {
				t.Fatal("oversized state would be echoed")
			}
			return
		}
		if p.ResponseType != "code" || p.CodeChallengeMethod != "S256" || len(p.CodeChallenge) != 43 {
			t.Fatalf("accepted %+v", p)
		}
		for k, v := range q {
			if len(v) > 1 && (k == "state" || k == "scope" || k == "code_challenge" || k == "resource" || k == "response_type") {
				t.Fatalf("accepted repeated %s", k)
			}
		}
	})
}

package mcptools

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAuthorizationConformance runs the authorization-server scenarios of
// the MCP conformance pre-release (0.2.0-alpha.12, .tools/mcp-auth:
// authorization-server-metadata-endpoint and authorization-code-grant)
// against a real mcpserver. The suite prints an authorization URL for a
// person to open and waits for the redirect on its own callback listener;
// this test plays that person: it signs in, approves the consent, and
// delivers the redirect to the suite, which then redeems the code.
func TestAuthorizationConformance(t *testing.T) {
	nt := requireTools(t)
	cli := filepath.Join(nt.root, ".tools", "mcp-auth", "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	if _, err := os.Stat(cli); err != nil {
		msg := "the conformance pre-release with authorization scenarios is not installed (run scripts/install-node22.sh): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := startServer(t, nt.root)
	const email = "conformance-as@example.com"
	s.createUser(email)

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	redirect := "http://127.0.0.1:" + strconv.Itoa(port) + "/callback"
	clientID := registerPublicClient(t, s.URL, redirect)

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	results := t.TempDir()
	cmd := exec.CommandContext(ctx, nt.node, cli, "authorization",
		"--url", s.URL, "--client-id", clientID, "--resource", s.URL+"/mcp",
		"--port", strconv.Itoa(port), "-o", results)
	cmd.Dir = t.TempDir()
	cmd.Env = nt.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Read the suite's output; the line naming our /authorize is the URL it
	// wants opened in a browser.
	var (
		mu  sync.Mutex
		out strings.Builder
	)
	authURLs := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			out.WriteString(line + "\n")
			mu.Unlock()
			if l := strings.TrimSpace(stripANSI(line)); strings.HasPrefix(l, s.URL+"/authorize?") {
				select {
				case authURLs <- l:
				default:
				}
			}
		}
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String() + stderr.String()
	}

	select {
	case authURL := <-authURLs:
		callback := signInAndApprove(t, s.URL, authURL, email)
		if !strings.HasPrefix(callback.String(), redirect+"?") {
			t.Fatalf("authorization redirected to %s, want %s", callback, redirect)
		}
		resp, err := http.Get(callback.String()) // to the suite's callback listener
		if err != nil {
			t.Fatalf("delivering the callback to the suite: %v\n%s", err, output())
		}
		resp.Body.Close()
	case <-readDone:
		cmd.Wait()
		t.Fatalf("the suite ended without asking for authorization:\n%s", output())
	case <-ctx.Done():
		t.Fatalf("the suite printed no authorization URL:\n%s", output())
	}
	<-readDone
	err = cmd.Wait()
	t.Logf("conformance authorization --url %s:\n%s", s.URL, summary(output()))
	if err != nil {
		t.Fatalf("conformance authorization: %v", err)
	}
	checkResults(t, results, []string{"authorization-server-metadata-endpoint", "authorization-code-grant"})
}

// checkResults reads the suite's checks.json of each wanted scenario
// (directories named authorization-server-<scenario>-<time>) and requires
// at least one check per scenario, every one of them successful.
func checkResults(t *testing.T, dir string, scenarios []string) {
	t.Helper()
	for _, sc := range scenarios {
		files, _ := filepath.Glob(filepath.Join(dir, "authorization-server-"+sc+"-*", "checks.json"))
		if len(files) != 1 {
			t.Errorf("scenario %s: %d result files in %s", sc, len(files), dir)
			continue
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		var checks []struct {
			ID           string `json:"id"`
			Status       string `json:"status"`
			ErrorMessage string `json:"errorMessage"`
		}
		if err := json.Unmarshal(b, &checks); err != nil {
			t.Fatalf("%s: %v", files[0], err)
		}
		if len(checks) == 0 {
			t.Errorf("scenario %s ran no checks", sc)
		}
		for _, c := range checks {
			if c.Status != "SUCCESS" {
				t.Errorf("scenario %s, check %s: %s %s", sc, c.ID, c.Status, c.ErrorMessage)
			}
		}
	}
}

// registerPublicClient registers a public client (PKCE, no secret) with
// redirect through RFC 7591 dynamic registration.
func registerPublicClient(t *testing.T, issuer, redirect string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_name":                "MCP conformance suite",
		"redirect_uris":              []string{redirect},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	resp, err := http.Post(issuer+"/register", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg struct {
		ClientID string `json:"client_id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &reg) != nil || reg.ClientID == "" {
		t.Fatalf("POST /register: %d %s", resp.StatusCode, raw)
	}
	return reg.ClientID
}

var (
	formRe   = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)">(.*?)</form>`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// formFields returns the hidden inputs of the form posting to action, or nil.
func formFields(page, action string) url.Values {
	for _, m := range formRe.FindAllStringSubmatch(page, -1) {
		if html.UnescapeString(m[1]) != action {
			continue
		}
		v := url.Values{}
		for _, h := range hiddenRe.FindAllStringSubmatch(m[2], -1) {
			v.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
		}
		return v
	}
	return nil
}

// signInAndApprove opens authURL in a cookie-keeping client that stays on
// the issuer, submits the login and consent forms, and returns the redirect
// to the client.
func signInAndApprove(t *testing.T, issuer, authURL, email string) *url.URL {
	t.Helper()
	base, _ := url.Parse(issuer)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 15 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != base.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	read := func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := read(c.Get(authURL))
	if f := formFields(page, "/login"); f != nil {
		f.Set("email", email)
		f.Set("password", password)
		resp, page = read(c.PostForm(issuer+"/login", f))
	}
	if f := formFields(page, "/authorize"); f != nil && strings.Contains(page, `name="decision"`) {
		f.Set("decision", "approve")
		resp, page = read(c.PostForm(issuer+"/authorize", f))
	}
	loc := resp.Header.Get("Location")
	if resp.StatusCode < 300 || resp.StatusCode >= 400 || loc == "" {
		t.Fatalf("authorization ended with %d at %s: %.400s", resp.StatusCode, resp.Request.URL, page)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

package web_test

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
	"testing"
	"time"

	"picard.dev/webclient/app"
	"picard.dev/webclient/internal/testserver"
)

// stack is the real web client, in-process, against the fake MCP server.
type stack struct {
	t    *testing.T
	mcp  *testserver.Server
	base string
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

type browser struct {
	s    *stack
	c    *http.Client
	csrf string
}

type page struct {
	status int
	body   string
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (b *browser) do(req *http.Request) page {
	b.s.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(raw); m != nil {
		b.csrf = string(m[1])
	}
	return page{status: resp.StatusCode, body: string(raw)}
}

func (b *browser) get(path string) page {
	req, _ := http.NewRequest(http.MethodGet, b.s.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", b.csrf)
	req, _ := http.NewRequest(http.MethodPost, b.s.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func must(t *testing.T, p page, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d\n%s", p.status, status, p.body)
	}
	for _, c := range contains {
		if !strings.Contains(p.body, c) {
			t.Fatalf("body lacks %q\n%s", c, p.body)
		}
	}
}

// signUpAndConnect makes a web-client account connected to the fake server
// as the fake user with the same email, and returns it with its user id.
func (s *stack) signUpAndConnect(email string) (*browser, string) {
	s.t.Helper()
	id := s.mcp.User(email, strings.Split(email, "@")[0])
	jar, _ := cookiejar.New(nil)
	b := &browser{s: s, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	b.get("/signup")
	must(s.t, b.post("/signup", url.Values{"email": {email}, "password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}}), http.StatusOK, "Connect")
	s.mcp.SetNextUser(email)
	must(s.t, b.post("/oauth/connect", nil), http.StatusOK, "Connected to the memory server")
	return b, id
}

// section returns the part of body from the first occurrence of start to
// the following end.
func section(t *testing.T, body, start, end string) string {
	t.Helper()
	i := strings.Index(body, start)
	if i < 0 {
		t.Fatalf("no %q in\n%s", start, body)
	}
	body = body[i:]
	if j := strings.Index(body, end); j >= 0 {
		body = body[:j]
	}
	return body
}

func TestPersonaAnswerIsSafeMarkdown(t *testing.T) {
	s := start(t)
	alice, aliceID := s.signUpAndConnect("alice@example.com")
	bob, _ := s.signUpAndConnect("bob@example.com")
	alice.get("/memories/new")
	must(t, alice.post("/memories", url.Values{
		"text":       {"I like **green tea** <script>alert(1)</script> [more](javascript:alert(2))"},
		"permission": {"public"},
	}), http.StatusOK, "Memory saved.")

	bob.get("/personas/" + aliceID)
	p := bob.post("/personas/"+aliceID, url.Values{"prompt": {"green tea"}})
	must(t, p, http.StatusOK, "Answer")
	answer := section(t, p.body, `<section class="panel answer">`, "</section>")
	if !strings.Contains(answer, "<strong>green tea</strong>") {
		t.Errorf("the answer's Markdown was not rendered:\n%s", answer)
	}
	for _, bad := range []string{"<script", "javascript:", "&lt;strong&gt;", "**green tea**"} {
		if strings.Contains(answer, bad) {
			t.Errorf("the answer contains %q:\n%s", bad, answer)
		}
	}
}

func TestOwnPersonaLinksToSettings(t *testing.T) {
	s := start(t)
	alice, aliceID := s.signUpAndConnect("alice@example.com")
	bob, _ := s.signUpAndConnect("bob@example.com")
	link := `href="` + s.mcp.URL + `/account#persona"`
	must(t, alice.get("/personas/me"), http.StatusOK, link, "Tune your persona on the MCP server")
	must(t, alice.get("/personas/"+aliceID), http.StatusOK, link)
	p := bob.get("/personas/" + aliceID)
	must(t, p, http.StatusOK)
	if strings.Contains(p.body, "Tune your persona") {
		t.Error("another user's persona page offers to tune it")
	}
}

func TestImportPreviewShowsProblemsOnNarrowScreens(t *testing.T) {
	s := start(t)
	alice, _ := s.signUpAndConnect("alice@example.com")
	alice.get("/import")
	p := alice.post("/import", url.Values{"content": {"text,permission\nfine,private\nbad row,classified\n"}, "format": {"csv"}, "action": {"preview"}})
	must(t, p, http.StatusUnprocessableEntity, "Fix the rows")
	// Problems is the second column, right after the line number.
	head := section(t, p.body, `<table class="preview">`, "</thead>")
	if !regexp.MustCompile(`(?s)<th scope="col">Line</th>\s*<th scope="col">Problems</th>`).MatchString(head) {
		t.Errorf("Problems is not the second column:\n%s", head)
	}
	bad := section(t, p.body, `<tr class="bad">`, "</tr>")
	if !regexp.MustCompile(`(?s)data-label="Line">3</td>\s*<td data-label="Problems" class="problems"><ul><li>[^<]*classified`).MatchString(bad) {
		t.Errorf("the bad row does not show its problem second:\n%s", bad)
	}
	for _, label := range []string{"Line", "Problems", "Text", "Visibility", "Tags"} {
		if !strings.Contains(bad, `data-label="`+label+`"`) {
			t.Errorf("cell %s has no label for the narrow layout", label)
		}
	}
	// Under 480 px the rows become labelled cards.
	css := alice.get("/static/style.css").body
	narrow := section(t, css, "@media (max-width: 480px)", "\n}")
	for _, rule := range []string{".preview tr { display: block;", ".preview td { display: block;", `.preview td::before { content: attr(data-label)`} {
		if !strings.Contains(narrow, rule) {
			t.Errorf("narrow layout lacks %q", rule)
		}
	}
}

func TestSharedWithShowsEmails(t *testing.T) {
	s := start(t)
	alice, _ := s.signUpAndConnect("alice@example.com")
	bobID := s.mcp.User("bob@example.com", "bob")
	carolID := s.mcp.User("carol@example.com", "carol")
	daveID := s.mcp.User("dave@example.com", "dave")
	erinID := s.mcp.User("erin@example.com", "erin")
	alice.get("/memories/new")

	// Shared by email: the detail page names Bob by the email typed.
	p := alice.post("/memories", url.Values{"text": {"for bob"}, "permission": {"shared"}, "shared_with": {"bob@example.com"}})
	must(t, p, http.StatusOK, "Memory saved.")
	shared := section(t, p.body, "<dt>Shared with</dt>", "</dd>")
	if !strings.Contains(shared, `<span title="user `+bobID+`">bob@example.com</span>`) {
		t.Errorf("Bob not shown by email:\n%s", shared)
	}

	// Bob is known now, so Carol, typed beside him, is learnt too; Dave,
	// typed as an id, stays an id.
	p = alice.post("/memories", url.Values{"text": {"for three"}, "permission": {"shared"}, "shared_with": {"carol@example.com, bob@example.com, " + daveID}})
	must(t, p, http.StatusOK, "Memory saved.")
	shared = section(t, p.body, "<dt>Shared with</dt>", "</dd>")
	for _, want := range []string{">bob@example.com<", `<span title="user ` + carolID + `">carol@example.com</span>`, `<span class="mono">` + daveID + `</span>`} {
		if !strings.Contains(shared, want) {
			t.Errorf("shared with lacks %q:\n%s", want, shared)
		}
	}

	// Two new emails at once cannot be told apart: ids, not guesses.
	p = alice.post("/memories", url.Values{"text": {"for two"}, "permission": {"shared"}, "shared_with": {"erin@example.com, dave@example.com"}})
	must(t, p, http.StatusOK, "Memory saved.")
	shared = section(t, p.body, "<dt>Shared with</dt>", "</dd>")
	if strings.Contains(shared, "@") || !strings.Contains(shared, erinID) || !strings.Contains(shared, daveID) {
		t.Errorf("ambiguous shares not shown as ids:\n%s", shared)
	}
}

package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// startChromium starts Debian's Chromium with a throwaway profile. Without
// Chromium the test skips (fails under CI=true).
func startChromium(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is required in CI: %v (scripts/install-chromium.sh)", err)
		}
		t.Skip("Chromium not installed at " + chromiumPath + " (run scripts/install-chromium.sh)")
	}
	// Not t.TempDir: Chromium's helpers may still write there for a moment
	// after the browser exits, so removal is retried.
	profile, err := os.MkdirTemp("", "picard-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// tab is one browser tab acting for one user.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string // the web client
	shots string // screenshot directory
	who   string
}

func (b *tab) step(what string, a chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, a); err != nil {
		b.t.Fatalf("%s: %s: %v (at %s)", b.who, what, err, b.location())
	}
}

// load runs a that makes the page navigate, waits for the new page and
// returns the status of its document.
func (b *tab) load(what string, a chromedp.Action[chromedp.Void]) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %s: %v (at %s)", b.who, what, err, b.location())
	}
	if resp == nil {
		return 0
	}
	return resp.Status
}

// open navigates to a path of the web client (or a full URL).
func (b *tab) open(path string) int64 {
	b.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = b.base + path
	}
	return b.load("open "+path, chromedp.Navigate(u))
}

func (b *tab) click(sel string) int64 {
	b.t.Helper()
	return b.load("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

func (b *tab) fill(fields ...string) {
	b.t.Helper()
	for i := 0; i+1 < len(fields); i += 2 {
		b.step("fill "+fields[i], chromedp.SetValue(chromedp.CSS(fields[i]), fields[i+1]))
	}
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: text of %s: %v (at %s)", b.who, sel, err, b.location())
	}
	return s
}

func (b *tab) count(sel string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		b.t.Fatalf("%s: counting %s: %v", b.who, sel, err)
	}
	return n
}

func (b *tab) attr(sel, name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		b.t.Fatalf("%s: attribute %s of %s: %v", b.who, name, sel, err)
	}
	return r.Value
}

func (b *tab) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

func (b *tab) url() *url.URL {
	b.t.Helper()
	u, err := url.Parse(b.location())
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// expect fails unless the page's main content contains every string.
func (b *tab) expect(want ...string) string {
	b.t.Helper()
	body := b.text("body")
	for _, w := range want {
		if !strings.Contains(body, w) {
			b.t.Fatalf("%s: page %s does not contain %q:\n%s", b.who, b.location(), w, body)
		}
	}
	return body
}

// shot writes full-page screenshots of the current page at 1280 and 375
// pixels wide.
func (b *tab) shot(name string) {
	b.t.Helper()
	for _, w := range []int64{1280, 375} {
		var vp chromedp.Action[chromedp.Void]
		if w == 375 {
			vp = chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateScale(2))
		} else {
			vp = chromedp.EmulateViewport(1280, 900)
		}
		b.step("viewport", vp)
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%s-%s-%d.png", b.who, name, w)), img, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.step("viewport", chromedp.EmulateViewport(1280, 900))
}

func (b *tab) cookies(urls ...string) []*network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: urls})
	if err != nil {
		b.t.Fatalf("reading cookies: %v", err)
	}
	return res.Cookies
}

// screenshotDir is PICARD_SCREENSHOT_DIR, or the test's artifact directory
// (kept under -outputdir when go test runs with -artifacts).
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("PICARD_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

var memoryPath = regexp.MustCompile(`^/memories/([0-9a-f-]{36})$`)

// TestBrowserJourney is issue 5's acceptance test: two people use the web
// client in Chromium against both real services.
func TestBrowserJourney(t *testing.T) {
	t.Parallel()
	root := startChromium(t)
	st := startWebStack(t)
	shots := screenshotDir(t)
	t.Logf("screenshots in %s", shots)

	const (
		aliceEmail = "alice@example.com"
		alicePass  = "alice-secret-pw-1"
		bobEmail   = "bob@example.com"
		bobPass    = "bob-secret-pw-22"
	)
	// Bob already has an account at the memory server (Alice's shares name
	// him by that email); Alice creates hers during her first connection.
	{
		fb := newFormBrowser(t)
		p := fb.get(st.MCP.URL + "/signup")
		p = fb.submit(p, fb.form(p, "/signup"), url.Values{"name": {"Bob Baker"}, "email": {bobEmail}, "password": {bobPass}, "password_confirm": {bobPass}})
		if p.Status != http.StatusOK {
			t.Fatalf("creating Bob at mcpserver: %d", p.Status)
		}
	}

	a := &tab{t: t, ctx: root, base: st.WebURL, shots: shots, who: "alice"}

	// Sign up at the web client.
	a.open("/")
	a.shot("home")
	a.open("/signup")
	a.shot("signup")
	a.fill("#email", aliceEmail, "#password", alicePass, "#password_confirm", alicePass)
	a.click(`form[action="/signup"] button[type=submit]`)
	if a.url().Path != "/connect" {
		t.Fatalf("after sign-up: %s, want /connect", a.location())
	}
	a.shot("connect")

	// Connect: the real mcpserver login page, its sign-up, its consent.
	a.click(`form[action="/oauth/connect"] button[type=submit]`)
	if u := a.location(); !strings.HasPrefix(u, st.MCP.URL+"/login") {
		t.Fatalf("connect led to %s, want the mcpserver login page", u)
	}
	a.shot("mcp-login")
	a.click(`a[href^="/signup"]`)
	a.fill("#name", "Alice Archer", "#email", aliceEmail, "#password", alicePass, "#password_confirm", alicePass)
	a.click(`form[action="/signup"] button[type=submit]`)
	if u := a.url(); u.Path != "/authorize" {
		t.Fatalf("after mcpserver sign-up: %s, want the consent page:\n%s", u, a.text("body"))
	}
	webHost := strings.TrimPrefix(st.WebURL, "http://")
	a.expect("Allow", webHost, "memories:write")
	a.shot("mcp-consent")
	a.click(`button[name="decision"][value="approve"]`)
	if u := a.url(); u.Host != webHost || u.Path != "/" {
		t.Fatalf("after consent: %s, want the web client's home", u)
	}
	a.expect("Connected")

	// Create, edit, search.
	a.open("/memories/new")
	a.shot("memory-new")
	a.fill("#text", "Tea, Earl Grey, **hot** — every afternoon.", "#tags", "tea, routine")
	a.click(`form[action="/memories"] button[type=submit]`)
	m := memoryPath.FindStringSubmatch(a.url().Path)
	if m == nil {
		t.Fatalf("after creating: %s, want /memories/{id}", a.location())
	}
	teaID := m[1]
	a.expect("Tea, Earl Grey, hot", "#tea", "private")
	if n := a.count(".md strong"); n == 0 {
		t.Errorf("Markdown in the memory was not rendered")
	}
	a.open("/memories/" + teaID + "/edit")
	a.fill("#text", "Tea, Earl Grey, hot — every afternoon in the ready room.")
	a.click(`form[action="/memories/` + teaID + `/edit"] button[type=submit]`)
	a.expect("in the ready room")

	a.open("/memories")
	a.fill("#q", "ready room tea")
	a.click(`form.filters button[type=submit]`)
	a.expect("Best matches first", "in the ready room", "score")
	a.shot("search")

	// Share with Bob by email; add a public and a private memory.
	a.open("/memories/" + teaID + "/edit")
	a.fill("#permission", "shared", "#shared_with", bobEmail)
	a.click(`form[action="/memories/` + teaID + `/edit"] button[type=submit]`)
	a.expect("shared", "Shared with", bobEmail)
	a.shot("memory-shared")

	a.open("/memories/new")
	a.fill("#text", "Alice's favourite ship is the Enterprise-D; she served on it as chief engineer.", "#permission", "public", "#tags", "ships")
	a.click(`form[action="/memories"] button[type=submit]`)
	a.expect("public")
	a.open("/memories/new")
	a.fill("#text", "Private: the replicator override code is 1701-omega.")
	a.click(`form[action="/memories"] button[type=submit]`)
	m = memoryPath.FindStringSubmatch(a.url().Path)
	if m == nil {
		t.Fatalf("after creating: %s", a.location())
	}
	privateID := m[1]

	// Bob: his own browser context (no cookies of Alice's), sign up at the
	// web client, connect through the mcpserver login page.
	bctx, cancelB := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelB()
	// The first action creates the tab; it must run on bctx itself, not on
	// a context with a timeout, whose end would take the tab with it.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("opening Bob's browser context: %v", err)
	}
	b := &tab{t: t, ctx: bctx, base: st.WebURL, shots: shots, who: "bob"}
	b.open("/signup")
	b.fill("#email", bobEmail, "#password", bobPass, "#password_confirm", bobPass)
	b.click(`form[action="/signup"] button[type=submit]`)
	b.click(`form[action="/oauth/connect"] button[type=submit]`)
	if u := b.location(); !strings.HasPrefix(u, st.MCP.URL+"/login") {
		t.Fatalf("Bob's connect led to %s, want the mcpserver login page", u)
	}
	b.fill("#email", bobEmail, "#password", bobPass)
	b.click(`form[action="/login"] button[type=submit]`)
	b.click(`button[name="decision"][value="approve"]`)
	b.expect("Connected")

	// Bob sees what Alice shared with him, and not her private memory.
	b.open("/personas")
	b.expect("Alice Archer")
	b.shot("personas")
	alicePersona := b.attr(`ul.personas a[href^="/personas/"]`, "href")
	b.open(alicePersona)
	b.expect("in the ready room", "Enterprise-D")
	if status := b.open("/memories/" + teaID); status != http.StatusOK {
		t.Errorf("Bob opening the memory shared with him: %d", status)
	}
	b.expect("in the ready room")
	if status := b.open("/memories/" + privateID); status != http.StatusNotFound {
		t.Errorf("Bob opening Alice's private memory: status %d, want 404", status)
	}
	if strings.Contains(b.text("body"), "1701-omega") {
		t.Errorf("Bob can read Alice's private memory")
	}
	b.open("/memories?q=" + url.QueryEscape("replicator override code"))
	if strings.Contains(b.text("body"), "1701-omega") {
		t.Errorf("Bob's search shows Alice's private memory")
	}

	// Bob asks Alice's persona.
	b.open(alicePersona)
	b.fill("#prompt", "Which ship did she serve on?")
	b.click(`form[action^="/personas/"] button[type=submit]`)
	b.expect("Answer", "Memories it drew on", "Enterprise-D")
	if ans := strings.TrimSpace(b.text(".answer .md")); ans == "" {
		t.Errorf("persona answer is empty")
	}
	b.shot("persona-answer")

	// Alice imports a CSV with one bad row: the preview names it and
	// nothing is stored; fixed, all rows are stored.
	bad := "text,permission,tags\n" +
		"Imported: Data plays the violin,private,import\n" +
		"Imported: Worf drinks prune juice,classified,import\n" +
		"Imported: Geordi's VISOR sees the EM spectrum,public,import\n"
	a.open("/import")
	a.fill("#content", bad, "#format", "csv")
	a.click(`button[name="action"][value="preview"]`)
	a.expect("Preview", "Fix the rows", "Nothing has been stored")
	if n := a.count("tr.bad"); n != 1 {
		t.Errorf("preview marks %d rows bad, want 1", n)
	}
	if a.count(`button[name="action"][value="import"]`) != 0 {
		t.Errorf("preview with a bad row offers to import")
	}
	if !strings.Contains(a.text("tr.bad"), "classified") && !strings.Contains(strings.ToLower(a.text("tr.bad")), "permission") {
		t.Errorf("the bad row's problem does not name the permission: %q", a.text("tr.bad"))
	}
	a.shot("import-preview-error")
	a.open("/memories?tag=import")
	if body := a.text("main"); strings.Contains(body, "Imported:") {
		t.Fatalf("a preview with a bad row stored memories:\n%s", body)
	}
	a.open("/import")
	a.fill("#content", strings.Replace(bad, "classified", "private", 1), "#format", "csv")
	a.click(`button[name="action"][value="preview"]`)
	a.expect("All 3 rows are valid")
	a.shot("import-preview-ok")
	a.click(`button[name="action"][value="import"]`)
	// Wait for the redirect after the import before navigating again, or
	// the next navigation races the form submission.
	a.expect("Import complete.")
	a.open("/memories?tag=import")
	a.expect("Data plays the violin", "Worf drinks prune juice", "Geordi's VISOR")
	a.shot("memories")

	// Export: both downloads, as the browser receives them.
	a.open("/export")
	a.shot("export")
	dl := t.TempDir()
	if _, err := chromedp.Call(a.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl,
	}); err != nil {
		t.Fatalf("allowing downloads: %v", err)
	}
	for _, format := range []string{"json", "csv"} {
		a.step("download "+format, chromedp.Click(chromedp.CSS(`a[href="/export?format=`+format+`"]`)))
		x := waitExchange(t, st.front, http.MethodGet, "/export", "format="+format)
		if x.Status != http.StatusOK || !strings.HasPrefix(x.Header.Get("Content-Disposition"), "attachment") {
			t.Errorf("export %s: status %d, Content-Disposition %q", format, x.Status, x.Header.Get("Content-Disposition"))
		}
		checkExport(t, format, x.Body, []string{"in the ready room", "Enterprise-D", "1701-omega", "Data plays the violin", "Worf drinks prune juice"})
	}
	waitFiles(t, dl, 2)

	// Disconnect: the grant is revoked at mcpserver.
	a.open("/connect")
	a.shot("connect-connected")
	a.click(`form[action="/oauth/disconnect"] button[type=submit]`)
	a.expect("Connect")
	if a.count(`form[action="/oauth/connect"]`) != 1 {
		t.Errorf("after disconnecting, no Connect button")
	}
	a.open("/memories")
	a.expect("needs a connection")

	// Tokens: learned behind the web client, never in front of it.
	exchanges, _ := st.front.snapshot()
	_, tokens := st.back.snapshot()
	if len(tokens) < 4 {
		t.Fatalf("captured %d tokens from /token, want Alice's and Bob's pairs", len(tokens))
	}
	if code := apiStatus(t, st.MCP.URL, tokens[0]); code != http.StatusUnauthorized {
		t.Errorf("Alice's access token after disconnect: /api/tools answered %d, want 401", code)
	}
	scanForTokens(t, exchanges, tokens)
	for _, tb := range []*tab{a, b} {
		for _, c := range tb.cookies(st.WebURL, st.MCP.URL) {
			for _, tok := range tokens {
				if strings.Contains(c.Value, tok) {
					t.Errorf("%s's cookie %s holds an OAuth token", tb.who, c.Name)
				}
			}
			if jwtLike.MatchString(c.Value) {
				t.Errorf("%s's cookie %s holds a JWT", tb.who, c.Name)
			}
			if c.Name == "picard_web_session" && (!c.HTTPOnly || c.SameSite != network.CookieSameSiteLax) {
				t.Errorf("session cookie: HttpOnly %v, SameSite %q", c.HTTPOnly, c.SameSite)
			}
		}
	}
	t.Logf("checked %d responses of the web client and the cookies of both browsers against %d tokens", len(exchanges), len(tokens))
}

// scanForTokens fails when a response of the web client carries a token,
// in its body or a header (Set-Cookie, Location, …).
func scanForTokens(t *testing.T, exchanges []exchange, tokens []string) {
	t.Helper()
	for _, x := range exchanges {
		var hdr strings.Builder
		for k, vs := range x.Header {
			fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		for _, part := range []string{string(x.Body), hdr.String()} {
			for _, tok := range tokens {
				if strings.Contains(part, tok) {
					t.Errorf("%s %s?%s: response contains an OAuth token", x.Method, x.Path, x.RawQuery)
				}
			}
			if jwtLike.MatchString(part) {
				t.Errorf("%s %s?%s: response contains a JWT", x.Method, x.Path, x.RawQuery)
			}
		}
	}
}

// apiStatus calls a read tool of mcpserver's /api with a bearer token.
func apiStatus(t *testing.T, mcpURL, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, mcpURL+"/api/tools", strings.NewReader(`{"tool":"retrieve_memories","data":{"limit":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitExchange(t *testing.T, r *recorder, method, path, query string) exchange {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if x, ok := r.find(method, path, query); ok {
			return x
		}
		if time.Now().After(deadline) {
			t.Fatalf("the browser did not request %s %s?%s", method, path, query)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFiles waits until dir holds n finished downloads.
func waitFiles(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, _ := os.ReadDir(dir)
		done := 0
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".crdownload") {
				if info, err := e.Info(); err == nil && info.Size() > 0 {
					done++
				}
			}
		}
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("downloads: %d of %d finished in %s", done, n, dir)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkExport(t *testing.T, format string, body []byte, want []string) {
	t.Helper()
	var texts []string
	switch format {
	case "json":
		var ms []struct {
			Text string `json:"text"`
			ID   string `json:"id"`
		}
		if err := json.Unmarshal(body, &ms); err != nil {
			t.Errorf("JSON export is not a JSON array of memories: %v\n%.500s", err, body)
			return
		}
		for _, m := range ms {
			texts = append(texts, m.Text)
		}
	case "csv":
		rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if err != nil || len(rows) < 2 {
			t.Errorf("CSV export: %v, %d rows\n%.500s", err, len(rows), body)
			return
		}
		col := -1
		for i, h := range rows[0] {
			if h == "text" {
				col = i
			}
		}
		if col < 0 {
			t.Errorf("CSV export header %v has no text column", rows[0])
			return
		}
		for _, r := range rows[1:] {
			texts = append(texts, r[col])
		}
	}
	all := strings.Join(texts, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("%s export lacks %q", format, w)
		}
	}
	if len(texts) != 6 {
		t.Errorf("%s export has %d memories, want 6", format, len(texts))
	}
}

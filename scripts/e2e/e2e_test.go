// Package e2e runs both real services in-process (mcpserver and the web
// client, on ports chosen by the OS) and drives them from the outside: the
// go-sdk MCP client's OAuth support as an independent MCP client, and
// Debian's Chromium through chromedp as a user's browser.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"

	mcpapp "picard.dev/mcpserver/app"
	"picard.dev/shared/pgtest"
	webapp "picard.dev/webclient/app"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// logger writes the services' warnings and errors into the test's output.
func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// mcpServer is a real mcpserver running in-process.
type mcpServer struct {
	URL string // the issuer, http://127.0.0.1:PORT
}

// startMCP starts mcpserver with SQLite in a temp dir (or whatever extra
// selects, e.g. MCP_DATABASE_URL). The issuer must name the real port, so
// a free port is picked first; another process may grab it in between,
// hence the retries.
func startMCP(t *testing.T, extra map[string]string) *mcpServer {
	t.Helper()
	dataDir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
		vars := map[string]string{
			"MCP_SERVER_HOST": "127.0.0.1",
			"MCP_SERVER_PORT": strconv.Itoa(port),
			"MCP_ISSUER_URL":  issuer,
			"MCP_DATA_DIR":    dataDir,
			"MCP_EMBEDDER":    "hash",
			"MCP_LOG_LEVEL":   "warn",
		}
		for k, v := range extra {
			vars[k] = v
		}
		cfg, err := mcpapp.LoadConfig(func(k string) string { return vars[k] })
		if err != nil {
			t.Fatalf("mcpserver config: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		a, err := mcpapp.New(ctx, cfg, logger(t))
		if err != nil {
			cancel()
			if errors.Is(err, syscall.EADDRINUSE) && attempt < 5 {
				continue
			}
			t.Fatalf("starting mcpserver: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("mcpserver Run: %v", err)
			}
			if err := a.Close(); err != nil {
				t.Errorf("mcpserver Close: %v", err)
			}
		})
		waitHealthy(t, issuer+"/healthz")
		return &mcpServer{URL: issuer}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitHealthy(t *testing.T, u string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy: %v", u, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// webStack is mcpserver and the web client, with recording proxies around
// the web client: one in front (what the browser receives) and one behind
// (what the web client receives from mcpserver, to learn the token values
// the browser must never see).
type webStack struct {
	MCP    *mcpServer
	WebURL string // the web client as the browser reaches it (the front proxy)
	front  *recorder
	back   *recorder
}

func startWebStack(t *testing.T) *webStack {
	t.Helper()
	// The web client's public URL is the front proxy's, so listen there
	// first; mcpserver must know it (allowed origins) before it starts.
	frontLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	webURL := "http://" + frontLn.Addr().String()
	mcp := startMCP(t, map[string]string{"WEBCLIENT_BASE_URL": webURL})

	back := newRecorder(t, mcp.URL, true)
	backSrv := &http.Server{Handler: back}
	backLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backSrv.Serve(backLn)
	t.Cleanup(func() { backSrv.Close() })

	webLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := webapp.ConfigFromMap(map[string]string{
		"WEBCLIENT_BASE_URL":      webURL,
		"MCP_SERVER_URL":          mcp.URL,
		"MCP_SERVER_INTERNAL_URL": "http://" + backLn.Addr().String(),
		"WEBCLIENT_DATA_DIR":      t.TempDir(),
	})
	if err != nil {
		t.Fatalf("web client config: %v", err)
	}
	wa, err := webapp.NewWithListener(cfg, logger(t), webLn)
	if err != nil {
		t.Fatalf("starting web client: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wa.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("web client Run: %v", err)
		}
		if err := wa.Close(); err != nil {
			t.Errorf("web client Close: %v", err)
		}
	})

	front := newRecorder(t, "http://"+wa.Addr(), false)
	frontSrv := &http.Server{Handler: front}
	go frontSrv.Serve(frontLn)
	t.Cleanup(func() { frontSrv.Close() })
	waitHealthy(t, webURL+"/healthz")
	return &webStack{MCP: mcp, WebURL: webURL, front: front, back: back}
}

// exchange is one request and its response as a proxy saw them.
type exchange struct {
	Method, Path, RawQuery string
	Status                 int
	Header                 http.Header
	Body                   []byte
}

// recorder is a reverse proxy that keeps every exchange, and (behind the
// web client) the token values in /token responses.
type recorder struct {
	proxy *httputil.ReverseProxy

	mu        sync.Mutex
	exchanges []exchange
	tokens    []string // access and refresh tokens seen in /token responses
}

func newRecorder(t *testing.T, target string, captureTokens bool) *recorder {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Plain bodies, so the recorded pages can be searched.
			pr.Out.Header.Del("Accept-Encoding")
		},
		ModifyResponse: func(resp *http.Response) error {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			x := exchange{Method: resp.Request.Method, Path: resp.Request.URL.Path, RawQuery: resp.Request.URL.RawQuery,
				Status: resp.StatusCode, Header: resp.Header.Clone(), Body: body}
			r.mu.Lock()
			defer r.mu.Unlock()
			r.exchanges = append(r.exchanges, x)
			if captureTokens && x.Path == "/token" && resp.StatusCode == http.StatusOK {
				var tr struct {
					AccessToken  string `json:"access_token"`
					RefreshToken string `json:"refresh_token"`
				}
				if json.Unmarshal(body, &tr) == nil {
					for _, tok := range []string{tr.AccessToken, tr.RefreshToken} {
						if tok != "" {
							r.tokens = append(r.tokens, tok)
						}
					}
				}
			}
			return nil
		},
	}
	return r
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.proxy.ServeHTTP(w, req) }

func (r *recorder) snapshot() ([]exchange, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.exchanges...), append([]string(nil), r.tokens...)
}

// find returns the last exchange for method and path whose query contains
// query.
func (r *recorder) find(method, path, query string) (exchange, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.exchanges) - 1; i >= 0; i-- {
		x := r.exchanges[i]
		if x.Method == method && x.Path == path && strings.Contains(x.RawQuery, query) {
			return x, true
		}
	}
	return exchange{}, false
}

// jwtLike matches a compact JWS whose header and payload are JSON objects.
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)

// htmlForm is a form of a page as a browser would submit it.
type htmlForm struct {
	Action string
	Method string
	Values url.Values
	// Buttons are the named submit buttons, name → values.
	Buttons url.Values
}

// parseForms reads the forms of an HTML page. Only what the test needs:
// inputs (checkboxes and radios when checked), textareas, selects and
// named buttons.
func parseForms(body string) ([]htmlForm, error) {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	var forms []htmlForm
	var walk func(n *html.Node, f *htmlForm)
	walk = func(n *html.Node, f *htmlForm) {
		if n.Type == html.ElementNode {
			a := func(k string) (string, bool) {
				for _, at := range n.Attr {
					if at.Key == k {
						return at.Val, true
					}
				}
				return "", false
			}
			name, _ := a("name")
			switch n.Data {
			case "form":
				action, _ := a("action")
				method, _ := a("method")
				nf := htmlForm{Action: action, Method: strings.ToUpper(method), Values: url.Values{}, Buttons: url.Values{}}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c, &nf)
				}
				forms = append(forms, nf)
				return
			case "input":
				if f != nil && name != "" {
					typ, _ := a("type")
					val, _ := a("value")
					_, checked := a("checked")
					switch strings.ToLower(typ) {
					case "checkbox", "radio":
						if checked {
							f.Values.Add(name, val)
						}
					case "submit":
						f.Buttons.Add(name, val)
					default:
						f.Values.Add(name, val)
					}
				}
			case "button":
				if f != nil && name != "" {
					val, _ := a("value")
					f.Buttons.Add(name, val)
				}
			case "textarea":
				if f != nil && name != "" {
					var sb strings.Builder
					for c := n.FirstChild; c != nil; c = c.NextSibling {
						if c.Type == html.TextNode {
							sb.WriteString(c.Data)
						}
					}
					f.Values.Add(name, sb.String())
				}
			case "select":
				if f != nil && name != "" {
					first, chosen := "", ""
					var opts func(*html.Node)
					opts = func(o *html.Node) {
						if o.Type == html.ElementNode && o.Data == "option" {
							v := ""
							sel := false
							for _, at := range o.Attr {
								switch at.Key {
								case "value":
									v = at.Val
								case "selected":
									sel = true
								}
							}
							if first == "" {
								first = v
							}
							if sel {
								chosen = v
							}
						}
						for c := o.FirstChild; c != nil; c = c.NextSibling {
							opts(c)
						}
					}
					opts(n)
					if chosen == "" {
						chosen = first
					}
					f.Values.Add(name, chosen)
				}
				return
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, f)
		}
	}
	walk(doc, nil)
	return forms, nil
}

// formBrowser is an http.Client with cookies that fills in forms the way a
// person's browser submits them.
type formBrowser struct {
	t      *testing.T
	client *http.Client
	// fatalf stops the flow: t.Fatalf on the test's goroutine; in callbacks
	// that run elsewhere (the OAuth code fetcher) a panic that the callback
	// turns into an error.
	fatalf func(format string, args ...any)
}

func newFormBrowser(t *testing.T) *formBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &formBrowser{t: t, client: &http.Client{Jar: jar, Timeout: 60 * time.Second}, fatalf: t.Fatalf}
}

// flowError carries a formBrowser failure out of a callback.
type flowError struct{ error }

// inCallback makes b's failures panics with a flowError, for use in a
// callback that recovers them (see recoverFlow).
func (b *formBrowser) inCallback() *formBrowser {
	c := *b
	c.fatalf = func(format string, args ...any) { panic(flowError{fmt.Errorf(format, args...)}) }
	return &c
}

// recoverFlow turns a flowError panic into *err.
func recoverFlow(err *error) {
	if r := recover(); r != nil {
		fe, ok := r.(flowError)
		if !ok {
			panic(r)
		}
		*err = fe.error
	}
}

// page is a fetched HTML page.
type page struct {
	URL    *url.URL
	Status int
	Body   string
	Header http.Header
}

func (b *formBrowser) get(u string) page {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.fatalf("GET %s: %v", u, err)
	}
	return b.readPage(resp)
}

func (b *formBrowser) readPage(resp *http.Response) page {
	b.t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.fatalf("reading %s: %v", resp.Request.URL, err)
	}
	return page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(body), Header: resp.Header}
}

// form finds the form of p whose action ends with action.
func (b *formBrowser) form(p page, action string) htmlForm {
	b.t.Helper()
	forms, err := parseForms(p.Body)
	if err != nil {
		b.fatalf("%v", err)
	}
	for _, f := range forms {
		if f.Action == action || strings.HasSuffix(f.Action, action) {
			return f
		}
	}
	b.fatalf("no form with action %q on %s (status %d):\n%s", action, p.URL, p.Status, p.Body)
	return htmlForm{}
}

// submit posts f from page p with the given fields changed, as a browser
// does (Origin of the page, the form's own hidden fields).
func (b *formBrowser) submit(p page, f htmlForm, set url.Values) page {
	b.t.Helper()
	vals := url.Values{}
	for k, v := range f.Values {
		vals[k] = append([]string(nil), v...)
	}
	for k, v := range set {
		vals[k] = v
	}
	target, err := p.URL.Parse(f.Action)
	if err != nil {
		b.fatalf("%v", err)
	}
	req, err := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(vals.Encode()))
	if err != nil {
		b.fatalf("%v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", p.URL.Scheme+"://"+p.URL.Host)
	resp, err := b.client.Do(req)
	if err != nil {
		b.fatalf("POST %s: %v", target, err)
	}
	return b.readPage(resp)
}

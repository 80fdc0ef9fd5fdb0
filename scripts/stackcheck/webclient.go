package stackcheck

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// WebOptions configure WebClient.
type WebOptions struct {
	// BaseURL is the web client, e.g. http://localhost:8000.
	BaseURL string
	// MCPURL is mcpserver as a browser reaches it, e.g. http://localhost:8001.
	MCPURL string
	// Transport carries every request (nil: http.DefaultTransport).
	Transport http.RoundTripper
	// RunID names this run's account; default the time.
	RunID string
}

type webSuite struct {
	ctx       context.Context
	r         *Report
	o         WebOptions
	web, mcp  *Browser // separate cookie jars, as for two sites
	creds     Credentials
	text      string
	memoryURL string
}

// WebClient runs the user journey through the web client: sign-up, connect
// to mcpserver (logging in and consenting there), a memory through the
// forms, listing and search, the persona pages, disconnecting and logging
// out. The account it creates stays; the memory is deleted.
func WebClient(ctx context.Context, r *Report, o WebOptions) {
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	o.MCPURL = strings.TrimRight(o.MCPURL, "/")
	if o.RunID == "" {
		o.RunID = time.Now().UTC().Format("20060102t150405") + "-" + strings.ToLower(randomString(4))
	}
	s := &webSuite{
		ctx: ctx, r: r, o: o, web: NewBrowser(o.Transport), mcp: NewBrowser(o.Transport),
		creds: Credentials{Email: "stackcheck-web-" + o.RunID + "@example.com", Password: "Pw-" + randomString(20)},
		text:  "Stackcheck web " + o.RunID + ": the holodeck program is Dixon Hill, a detective in San Francisco.",
	}
	s.check("web: GET /healthz", func() error {
		p, err := s.web.Get(ctx, o.BaseURL+"/healthz")
		if err != nil {
			return err
		}
		if p.Status != http.StatusOK {
			return fmt.Errorf("%s", p)
		}
		return nil
	})
	s.check("web: GET / (home)", func() error { _, err := s.page("/"); return err })
	if !s.check("web: sign-up (email, password, password_confirm) leads to /connect", s.signUp) {
		return
	}
	s.check("web: pages needing a connection show the connect button", func() error {
		p, err := s.page("/memories")
		if err != nil {
			return err
		}
		_, err = FindForm(p, func(f *Form) bool { return strings.HasSuffix(f.Action, "/oauth/connect") })
		return err
	})
	if !s.check("mcpserver: sign-up of the same person on the MCP server", func() error {
		return SignUp(ctx, s.mcp, o.MCPURL, s.creds, "Stackcheck Web")
	}) {
		return
	}
	if !s.check("web: connect (OAuth to mcpserver: login and consent there, callback here)", s.connect) {
		return
	}
	s.check("web: a form post without the CSRF token is refused", func() error {
		p, err := s.web.PostForm(ctx, o.BaseURL+"/memories", url.Values{"text": {"must not be stored"}})
		if err != nil {
			return err
		}
		if p.Status != http.StatusForbidden {
			return fmt.Errorf("%s, want 403", p)
		}
		return nil
	})
	if s.check("web: create a memory through the form (field text)", s.createMemory) {
		s.check("web: the memory is in the list", func() error {
			p, err := s.page("/memories")
			if err != nil {
				return err
			}
			if !strings.Contains(string(p.Body), s.text) {
				return fmt.Errorf("the list does not show %q: %s", s.text, p)
			}
			return nil
		})
		s.check("web: search finds the memory", s.search)
		s.check("web: persona pages (list, own persona, a question)", s.persona)
		s.check("web: delete the memory", s.deleteMemory)
	}
	s.check("web: disconnect", s.disconnect)
	s.check("web: log out", s.logout)
}

func (s *webSuite) check(name string, fn func() error) bool { return s.r.Check(name, fn) }

// page GETs a web client path, follows redirects and wants a 200.
func (s *webSuite) page(path string) (*Page, error) {
	p, err := s.web.Get(s.ctx, s.o.BaseURL+path)
	if err != nil {
		return nil, err
	}
	if p, err = s.web.Follow(s.ctx, p, nil); err != nil {
		return nil, err
	}
	if p.Status != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, p)
	}
	return p, nil
}

// submit submits form f of p, follows redirects and wants a 200.
func (s *webSuite) submit(p *Page, f *Form, fill url.Values) (*Page, error) {
	q, err := s.web.Submit(s.ctx, p, f, fill)
	if err != nil {
		return nil, err
	}
	if q, err = s.web.Follow(s.ctx, q, nil); err != nil {
		return nil, err
	}
	if q.Status != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s", f.Method, f.Action, q)
	}
	return q, nil
}

func (s *webSuite) signUp() error {
	if err := SignUp(s.ctx, s.web, s.o.BaseURL, s.creds, ""); err != nil {
		return err
	}
	p, err := s.page("/connect")
	if err != nil {
		return err
	}
	if _, err := FindForm(p, func(f *Form) bool { return strings.HasSuffix(f.Action, "/oauth/connect") }); err != nil {
		return fmt.Errorf("after sign-up: %w", err)
	}
	return nil
}

func (s *webSuite) connect() error {
	p, err := s.page("/connect")
	if err != nil {
		return err
	}
	f, err := FindForm(p, func(f *Form) bool { return strings.HasSuffix(f.Action, "/oauth/connect") })
	if err != nil {
		return err
	}
	p, err = s.web.Submit(s.ctx, p, f, nil)
	if err != nil {
		return err
	}
	if !p.Redirect() {
		return fmt.Errorf("POST /oauth/connect: %s, want a redirect to mcpserver", p)
	}
	start, err := p.Location()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(start.String(), s.o.MCPURL+"/authorize") {
		return fmt.Errorf("POST /oauth/connect redirects to %s, want %s/authorize (MCP_SERVER_URL, as the browser reaches it)", start, s.o.MCPURL)
	}
	q := start.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		return fmt.Errorf("the authorization request lacks PKCE S256 or state: %s", start)
	}
	callback, err := WalkAuthorization(s.ctx, s.mcp, start.String(), s.creds, false, func(u *url.URL) bool {
		return strings.HasPrefix(u.String(), s.o.BaseURL+"/")
	})
	if err != nil {
		return err
	}
	if callback.Query().Get("code") == "" {
		return fmt.Errorf("mcpserver redirected back without a code: %s", callback)
	}
	// Back in the web client's browser (its own cookies).
	p, err = s.web.Get(s.ctx, callback.String())
	if err != nil {
		return err
	}
	if p, err = s.web.Follow(s.ctx, p, nil); err != nil {
		return err
	}
	if p.Status != http.StatusOK {
		return fmt.Errorf("the callback: %s", p)
	}
	if p, err = s.page("/connect"); err != nil {
		return err
	}
	if _, err := FindForm(p, func(f *Form) bool { return strings.HasSuffix(f.Action, "/oauth/disconnect") }); err != nil {
		return fmt.Errorf("after the callback, /connect does not show a connection: %w", err)
	}
	return nil
}

func (s *webSuite) createMemory() error {
	p, err := s.page("/memories/new")
	if err != nil {
		return err
	}
	f, err := FindForm(p, func(f *Form) bool { return f.Has("text") && strings.EqualFold(f.Method, http.MethodPost) })
	if err != nil {
		return err
	}
	fill := url.Values{"text": {s.text}}
	if f.Has("permission") {
		fill.Set("permission", "public")
	}
	if f.Has("tags") {
		fill.Set("tags", "stackcheck, stackcheck-"+s.o.RunID)
	}
	q, err := s.web.Submit(s.ctx, p, f, fill)
	if err != nil {
		return err
	}
	if !q.Redirect() {
		return fmt.Errorf("POST %s: %s, want a redirect after saving", f.Action, q)
	}
	loc, err := q.Location()
	if err != nil {
		return err
	}
	if rest, ok := strings.CutPrefix(loc.Path, "/memories/"); ok && isUUID(strings.Trim(rest, "/")) {
		s.memoryURL = "/memories/" + strings.Trim(rest, "/")
	}
	if q, err = s.web.Follow(s.ctx, q, nil); err != nil {
		return err
	}
	if q.Status != http.StatusOK || !strings.Contains(string(q.Body), s.text) {
		return fmt.Errorf("after saving: %s", q)
	}
	return nil
}

func (s *webSuite) search() error {
	p, err := s.page("/memories")
	if err != nil {
		return err
	}
	f, err := FindForm(p, func(f *Form) bool { return f.Has("q") })
	if err != nil {
		return err
	}
	q, err := s.submit(p, f, url.Values{"q": {"Dixon Hill detective holodeck"}})
	if err != nil {
		return err
	}
	if !strings.Contains(string(q.Body), s.text) {
		return fmt.Errorf("the search results do not show the memory: %s", q)
	}
	return nil
}

func (s *webSuite) persona() error {
	if _, err := s.page("/personas"); err != nil {
		return err
	}
	p, err := s.page("/personas/me")
	if err != nil {
		return err
	}
	f, err := FindForm(p, func(f *Form) bool { return f.Has("prompt") })
	if err != nil {
		return err
	}
	q, err := s.submit(p, f, url.Values{"prompt": {"Which holodeck program do I like?"}})
	if err != nil {
		return err
	}
	if !strings.Contains(string(q.Body), "Dixon Hill") {
		return fmt.Errorf("the answer does not mention the public memory about Dixon Hill: %s", q)
	}
	return nil
}

func (s *webSuite) deleteMemory() error {
	if s.memoryURL == "" {
		return errors.New("the create redirect did not name the memory (/memories/{id}), so it cannot be deleted")
	}
	p, err := s.page(s.memoryURL + "/delete")
	if err != nil {
		return err
	}
	f, err := FindForm(p, func(f *Form) bool {
		return strings.EqualFold(f.Method, http.MethodPost) && strings.HasSuffix(f.Action, "/delete")
	})
	if err != nil {
		return err
	}
	q, err := s.submit(p, f, nil)
	if err != nil {
		return err
	}
	if strings.Contains(string(q.Body), s.text) {
		return fmt.Errorf("after deleting, the page still shows the memory: %s", q)
	}
	r, err := s.web.Get(s.ctx, s.o.BaseURL+s.memoryURL)
	if err != nil {
		return err
	}
	if r.Status != http.StatusNotFound {
		return fmt.Errorf("GET %s after deleting: %s, want 404", s.memoryURL, r)
	}
	return nil
}

func (s *webSuite) disconnect() error {
	p, err := s.page("/connect")
	if err != nil {
		return err
	}
	f, err := FindForm(p, func(f *Form) bool { return strings.HasSuffix(f.Action, "/oauth/disconnect") })
	if err != nil {
		return err
	}
	if _, err := s.submit(p, f, nil); err != nil {
		return err
	}
	if p, err = s.page("/memories"); err != nil {
		return err
	}
	if _, err := FindForm(p, func(f *Form) bool { return strings.HasSuffix(f.Action, "/oauth/connect") }); err != nil {
		return fmt.Errorf("after disconnecting, /memories does not ask to connect: %w", err)
	}
	return nil
}

func (s *webSuite) logout() error {
	p, err := s.page("/")
	if err != nil {
		return err
	}
	f, err := FindForm(p, func(f *Form) bool { return strings.HasSuffix(f.Action, "/logout") })
	if err != nil {
		return err
	}
	if _, err := s.submit(p, f, nil); err != nil {
		return err
	}
	r, err := s.web.Get(s.ctx, s.o.BaseURL+"/memories")
	if err != nil {
		return err
	}
	loc, _ := r.Location()
	if !r.Redirect() || loc == nil || loc.Path != "/login" {
		return fmt.Errorf("GET /memories after logging out: %s, want a redirect to /login", r)
	}
	return nil
}

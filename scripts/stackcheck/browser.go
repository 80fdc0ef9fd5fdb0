package stackcheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// retry429 retries a request answered 429 Too Many Requests after the
// Retry-After it names (at most 30 s, four times), so the checks pass
// against a stack with its production rate limits.
type retry429 struct{ base http.RoundTripper }

func (t retry429) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := t.base.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || attempt == 4 {
			return resp, err
		}
		if req.Body != nil && req.GetBody == nil {
			return resp, nil // cannot resend the body
		}
		wait := time.Second << attempt
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s)*time.Second + 100*time.Millisecond
		}
		wait = min(wait, 30*time.Second)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(wait):
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// NewHTTPClient returns a client that does not follow redirects (the checks
// look at each one) and retries rate-limited requests. base may be nil.
func NewHTTPClient(base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{
		Transport:     retry429{base},
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Browser is an HTTP client with its own cookie jar, like one browser
// profile: it follows redirects explicitly and submits HTML forms.
type Browser struct {
	Client *http.Client
}

// NewBrowser returns a browser with an empty cookie jar over base (nil for
// the default transport).
func NewBrowser(base http.RoundTripper) *Browser {
	jar, _ := cookiejar.New(nil)
	c := NewHTTPClient(base)
	c.Jar = jar
	return &Browser{Client: c}
}

// Page is a fetched response with its body read.
type Page struct {
	URL    *url.URL
	Status int
	Header http.Header
	Body   []byte
}

// Location resolves the Location header against the page URL.
func (p *Page) Location() (*url.URL, error) {
	loc := p.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%s answered %d without a Location", p.URL, p.Status)
	}
	return p.URL.Parse(loc)
}

// Redirect reports whether the page is a redirect.
func (p *Page) Redirect() bool { return p.Status >= 300 && p.Status < 400 }

func (p *Page) String() string {
	return fmt.Sprintf("%d from %s: %s", p.Status, p.URL, snippet(p.Body))
}

// snippet is the visible text of an HTML or JSON body, shortened, for error
// messages.
func snippet(b []byte) string {
	s := string(b)
	if doc, err := html.Parse(bytes.NewReader(b)); err == nil && bytes.Contains(b, []byte("<")) {
		var sb strings.Builder
		var walk func(*html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style" || n.Data == "head") {
				return
			}
			if n.Type == html.TextNode {
				sb.WriteString(n.Data)
				sb.WriteByte(' ')
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(doc)
		s = sb.String()
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Do sends req and reads the response.
func (b *Browser) Do(req *http.Request) (*Page, error) {
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	return &Page{URL: req.URL, Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Get fetches u without following redirects.
func (b *Browser) Get(ctx context.Context, u string) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/html,application/json;q=0.9,*/*;q=0.8")
	return b.Do(req)
}

// PostForm posts values to u without following redirects.
func (b *Browser) PostForm(ctx context.Context, u string, values url.Values) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(values.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	// Browsers send Origin on form posts; servers checking it see the page's own.
	if pu, err := url.Parse(u); err == nil {
		req.Header.Set("Origin", pu.Scheme+"://"+pu.Host)
	}
	return b.Do(req)
}

// Follow follows redirects from p (GET, as browsers do after 302/303) while
// stop, given each target, returns false; it returns the last page, or the
// redirect whose target stop accepted.
func (b *Browser) Follow(ctx context.Context, p *Page, stop func(*url.URL) bool) (*Page, error) {
	for i := 0; p.Redirect(); i++ {
		if i == 15 {
			return nil, fmt.Errorf("more than 15 redirects, last to %s", p.Header.Get("Location"))
		}
		next, err := p.Location()
		if err != nil {
			return nil, err
		}
		if stop != nil && stop(next) {
			return p, nil
		}
		if p, err = b.Get(ctx, next.String()); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Form is an HTML form with the values a browser would submit by default.
type Form struct {
	Action  string
	Method  string
	Values  url.Values
	Fields  map[string]string // name → input type (or "textarea", "select")
	Buttons []Button          // submit buttons with a name
	Options map[string][]string
}

// Button is a named submit button.
type Button struct{ Name, Value, Label string }

// Has reports whether the form has a field called name.
func (f *Form) Has(name string) bool { _, ok := f.Fields[name]; return ok }

// HasButton reports whether the form has a submit button name=value.
func (f *Form) HasButton(name, value string) bool {
	for _, b := range f.Buttons {
		if b.Name == name && b.Value == value {
			return true
		}
	}
	return false
}

// Submit fills values into a copy of the form's defaults and submits it
// from page p (the action is resolved against p's URL).
func (b *Browser) Submit(ctx context.Context, p *Page, f *Form, fill url.Values) (*Page, error) {
	v := url.Values{}
	for k, vs := range f.Values {
		v[k] = append([]string(nil), vs...)
	}
	for k, vs := range fill {
		v[k] = vs
	}
	action, err := p.URL.Parse(f.Action)
	if err != nil {
		return nil, fmt.Errorf("form action %q: %w", f.Action, err)
	}
	if strings.EqualFold(f.Method, http.MethodGet) {
		action.RawQuery = v.Encode()
		return b.Get(ctx, action.String())
	}
	return b.PostForm(ctx, action.String(), v)
}

// Forms parses the forms of an HTML page.
func Forms(body []byte) ([]*Form, error) {
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	var forms []*Form
	var cur *Form
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				f := &Form{Action: attr(n, "action"), Method: strings.ToUpper(attr(n, "method")), Values: url.Values{}, Fields: map[string]string{}, Options: map[string][]string{}}
				if f.Method == "" {
					f.Method = http.MethodGet
				}
				forms = append(forms, f)
				prev := cur
				cur = f
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
				cur = prev
				return
			case "input":
				if cur != nil {
					addInput(cur, n)
				}
			case "button":
				if cur != nil && attr(n, "name") != "" && strings.ToLower(attrOr(n, "type", "submit")) == "submit" {
					cur.Buttons = append(cur.Buttons, Button{Name: attr(n, "name"), Value: attr(n, "value"), Label: strings.TrimSpace(text(n))})
				}
			case "textarea":
				if cur != nil && attr(n, "name") != "" {
					cur.Fields[attr(n, "name")] = "textarea"
					cur.Values.Set(attr(n, "name"), text(n))
				}
			case "select":
				if cur != nil && attr(n, "name") != "" {
					addSelect(cur, n)
				}
				return
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return forms, nil
}

func addInput(f *Form, n *html.Node) {
	name := attr(n, "name")
	typ := strings.ToLower(attrOr(n, "type", "text"))
	if name == "" {
		return
	}
	switch typ {
	case "submit", "image":
		f.Buttons = append(f.Buttons, Button{Name: name, Value: attr(n, "value"), Label: attr(n, "value")})
		return
	case "button", "reset", "file":
		f.Fields[name] = typ
		return
	case "checkbox", "radio":
		f.Fields[name] = typ
		f.Options[name] = append(f.Options[name], attrOr(n, "value", "on"))
		if hasAttr(n, "checked") {
			f.Values.Add(name, attrOr(n, "value", "on"))
		}
		return
	}
	f.Fields[name] = typ
	f.Values.Set(name, attr(n, "value"))
}

func addSelect(f *Form, n *html.Node) {
	name := attr(n, "name")
	f.Fields[name] = "select"
	var first, selected string
	haveFirst := false
	var walk func(*html.Node)
	walk = func(c *html.Node) {
		if c.Type == html.ElementNode && c.Data == "option" {
			v := attrOr(c, "value", strings.TrimSpace(text(c)))
			f.Options[name] = append(f.Options[name], v)
			if !haveFirst {
				first, haveFirst = v, true
			}
			if hasAttr(c, "selected") {
				selected = v
			}
		}
		for d := c.FirstChild; d != nil; d = d.NextSibling {
			walk(d)
		}
	}
	walk(n)
	if selected == "" {
		selected = first
	}
	f.Values.Set(name, selected)
}

func attr(n *html.Node, key string) string { return attrOr(n, key, "") }

func attrOr(n *html.Node, key, def string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return def
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(c *html.Node) {
		if c.Type == html.TextNode {
			sb.WriteString(c.Data)
		}
		for d := c.FirstChild; d != nil; d = d.NextSibling {
			walk(d)
		}
	}
	walk(n)
	return sb.String()
}

// FindForm returns the first form of page p that match accepts.
func FindForm(p *Page, match func(*Form) bool) (*Form, error) {
	forms, err := Forms(p.Body)
	if err != nil {
		return nil, err
	}
	for _, f := range forms {
		if match(f) {
			return f, nil
		}
	}
	return nil, fmt.Errorf("no matching form on %s", p)
}

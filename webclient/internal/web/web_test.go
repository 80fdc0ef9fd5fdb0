package web

import (
	"strings"
	"testing"
)

func TestMarkdownIsSanitised(t *testing.T) {
	md := newMarkdown()
	for _, in := range []string{
		"<script>alert(1)</script>",
		"[x](javascript:alert(1))",
		"<img src=x onerror=alert(1)>",
		"<a href=\"#\" onclick=\"alert(1)\">x</a>",
		"![x](javascript:alert(1))",
	} {
		out := string(md.render(in))
		for _, bad := range []string{"<script", "javascript:", "onerror", "onclick"} {
			if strings.Contains(strings.ToLower(out), bad) {
				t.Errorf("render(%q) = %q contains %q", in, out, bad)
			}
		}
	}
	if out := string(md.render("**bold** [link](https://example.com)")); !strings.Contains(out, "<strong>bold</strong>") || !strings.Contains(out, `href="https://example.com"`) {
		t.Errorf("markdown lost: %s", out)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/memories?q=x":        "/memories?q=x",
		"":                     "/",
		"//evil.example":       "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"/a\r\nSet-Cookie: x":  "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMemoryFormParse(t *testing.T) {
	f := memoryForm{Text: "t", Tags: "a, b,,", Permission: "shared", SharedWith: "bob@example.com",
		Expiration: "2030-01-02T03:04", Meta: []metaPair{{"n", "2"}, {"s", "x"}, {"", ""}}}
	p, ok := f.parse(map[string]any{"n": 2.0})
	if !ok {
		t.Fatal(f.Errors)
	}
	if p.Metadata["n"] != 2.0 || p.Metadata["s"] != "x" || len(p.Tags) != 2 || p.ExpirationDate.Format("2006-01-02T15:04") != "2030-01-02T03:04" {
		t.Fatalf("%+v", p)
	}
	bad := memoryForm{Text: "", Permission: "nope", Meta: []metaPair{{"k", "1"}, {"k", "2"}, {"", "orphan"}}, Expiration: "soon"}
	if _, ok := bad.parse(nil); ok || len(bad.Errors) < 5 {
		t.Fatalf("errors: %v", bad.Errors)
	}
}

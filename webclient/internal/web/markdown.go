package web

import (
	"bytes"
	"html/template"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// markdown renders memory text. goldmark already escapes raw HTML (its
// unsafe mode is off); bluemonday then strips anything a crafted document
// could still smuggle through, such as javascript: links.
type markdown struct {
	md     goldmark.Markdown
	policy *bluemonday.Policy
}

func newMarkdown() *markdown {
	p := bluemonday.UGCPolicy()
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(false)
	return &markdown{
		md:     goldmark.New(goldmark.WithExtensions(extension.GFM)),
		policy: p,
	}
}

func (m *markdown) render(src string) template.HTML {
	var buf bytes.Buffer
	if err := m.md.Convert([]byte(src), &buf); err != nil {
		return template.HTML(template.HTMLEscapeString(src)) // #nosec G203 -- escaped right here
	}
	return template.HTML(m.policy.SanitizeBytes(buf.Bytes())) // #nosec G203 -- sanitised by the bluemonday policy
}

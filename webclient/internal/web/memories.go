package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"picard.dev/shared"
	"picard.dev/webclient/internal/memoryclient"
	"picard.dev/webclient/internal/transfer"
)

// pageSize is how many memories a list page shows.
const pageSize = 20

// conn returns the memory client acting for the signed-in user.
func (s *server) conn(c *echo.Context) *memoryclient.Conn {
	userID := currentUser(c).ID
	return s.Memories.With(func(ctx context.Context) (string, error) {
		return s.OAuth.AccessToken(ctx, userID)
	})
}

// memoryItem is a memory prepared for a template.
type memoryItem struct {
	shared.Memory
	HTML     template.HTML
	Score    float64
	HasScore bool
	Mine     bool
	MetaRows []metaPair
}

func (s *server) item(c *echo.Context, m shared.Memory) memoryItem {
	sub := connState(c).Subject
	it := memoryItem{Memory: m, HTML: s.markdown.render(m.Text), Mine: sub == "" || m.OwnerID == sub}
	for _, k := range sortedKeys(m.Metadata) {
		it.MetaRows = append(it.MetaRows, metaPair{Key: k, Value: metaString(m.Metadata[k])})
	}
	return it
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// metaString shows a metadata value: strings as they are, anything else
// as JSON.
func metaString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

type listFilter struct {
	Permission string
	Tag        string
	Query      string
	Expired    bool
	Cursor     string
}

func (f listFilter) url(cursor string) string {
	q := url.Values{}
	if f.Permission != "" {
		q.Set("permission", f.Permission)
	}
	if f.Tag != "" {
		q.Set("tag", f.Tag)
	}
	if f.Query != "" {
		q.Set("q", f.Query)
	}
	if f.Expired {
		q.Set("expired", "1")
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) == 0 {
		return "/memories"
	}
	return "/memories?" + q.Encode()
}

type listPage struct {
	Filter    listFilter
	Items     []memoryItem
	NextURL   string
	FirstURL  string
	Searching bool
	Form      memoryForm
}

func validPermission(p string) bool {
	return p == shared.PermissionPrivate || p == shared.PermissionPublic || p == shared.PermissionShared
}

func (s *server) listMemories(c *echo.Context) error {
	f := listFilter{
		Permission: c.QueryParam("permission"),
		Tag:        strings.TrimSpace(c.QueryParam("tag")),
		Query:      strings.TrimSpace(c.QueryParam("q")),
		Expired:    c.QueryParam("expired") != "",
		Cursor:     c.QueryParam("cursor"),
	}
	if !validPermission(f.Permission) {
		f.Permission = ""
	}
	d := listPage{Filter: f, Form: memoryForm{Permission: shared.PermissionPrivate}}
	ctx := c.Request().Context()
	var tags []string
	if f.Tag != "" {
		tags = []string{f.Tag}
	}
	if f.Query != "" {
		d.Searching = true
		results, err := s.conn(c).QueryMemory(ctx, shared.QueryMemoryArgs{Query: f.Query, Limit: pageSize, Permission: f.Permission, Tags: tags})
		if err != nil {
			return err
		}
		for _, r := range results {
			it := s.item(c, r.Memory)
			it.Score, it.HasScore = r.Score, true
			d.Items = append(d.Items, it)
		}
	} else {
		page, err := s.conn(c).GetMemories(ctx, shared.GetMemoriesArgs{Permission: f.Permission, Tags: tags, IncludeExpired: f.Expired, Limit: pageSize, Cursor: f.Cursor})
		if err != nil {
			return err
		}
		for _, m := range page.Memories {
			d.Items = append(d.Items, s.item(c, m))
		}
		if page.NextCursor != "" {
			d.NextURL = f.url(page.NextCursor)
		}
		if f.Cursor != "" {
			d.FirstURL = f.url("")
		}
	}
	return s.render(c, http.StatusOK, "memories.html", d)
}

type metaPair struct{ Key, Value string }

// memoryForm is the create and edit form, kept as typed so it can be
// shown again unchanged when something is wrong.
type memoryForm struct {
	ID         string
	Text       string
	Tags       string
	Permission string
	SharedWith string
	Expiration string
	Meta       []metaPair
	Errors     []string
}

// blankMetaRows is how many empty key/value rows the form offers; there is
// no script to add rows, so a few spare ones are always there.
const blankMetaRows = 3

func (f *memoryForm) padMeta() {
	n := 0
	for _, p := range f.Meta {
		if p.Key != "" || p.Value != "" {
			f.Meta[n] = p
			n++
		}
	}
	f.Meta = f.Meta[:n]
	for range blankMetaRows {
		f.Meta = append(f.Meta, metaPair{})
	}
}

const datetimeLocal = "2006-01-02T15:04"

func formFromMemory(m shared.Memory) memoryForm {
	f := memoryForm{ID: m.ID, Text: m.Text, Tags: strings.Join(m.Tags, ", "), Permission: m.Permission, SharedWith: strings.Join(m.SharedWith, ", ")}
	if m.ExpirationDate != nil {
		f.Expiration = m.ExpirationDate.UTC().Format(datetimeLocal)
	}
	for _, k := range sortedKeys(m.Metadata) {
		f.Meta = append(f.Meta, metaPair{Key: k, Value: metaString(m.Metadata[k])})
	}
	f.padMeta()
	return f
}

func formFromRequest(c *echo.Context) (memoryForm, error) {
	vals, err := c.FormValues()
	if err != nil {
		return memoryForm{}, err
	}
	f := memoryForm{
		Text:       vals.Get("text"),
		Tags:       vals.Get("tags"),
		Permission: vals.Get("permission"),
		SharedWith: vals.Get("shared_with"),
		Expiration: strings.TrimSpace(vals.Get("expiration_date")),
	}
	if f.Permission == "" {
		f.Permission = shared.PermissionPrivate
	}
	keys, values := vals["meta_key"], vals["meta_value"]
	for i, k := range keys {
		v := ""
		if i < len(values) {
			v = values[i]
		}
		f.Meta = append(f.Meta, metaPair{Key: strings.TrimSpace(k), Value: v})
	}
	return f, nil
}

// parsedMemory is a validated form.
type parsedMemory struct {
	shared.NewMemory
}

// parse validates the form. orig, when editing, supplies the old metadata
// so values shown as JSON (numbers, objects) keep their type when unchanged.
func (f *memoryForm) parse(orig map[string]any) (parsedMemory, bool) {
	var p parsedMemory
	p.Text = f.Text
	p.Permission = f.Permission
	p.Tags = transfer.SplitList(f.Tags)
	p.SharedWith = transfer.SplitList(f.SharedWith)
	if !validPermission(p.Permission) {
		f.Errors = append(f.Errors, "Choose private, public or shared.")
	}
	if p.Permission != shared.PermissionShared && len(p.SharedWith) > 0 {
		f.Errors = append(f.Errors, "To share with people, set the permission to shared.")
	}
	if f.Expiration != "" {
		t, err := time.Parse(datetimeLocal, f.Expiration)
		if err != nil {
			t, err = transfer.ParseTime(f.Expiration)
		}
		if err != nil {
			f.Errors = append(f.Errors, "The expiration must be a date and time (YYYY-MM-DDTHH:MM, UTC).")
		} else {
			t = t.UTC()
			p.ExpirationDate = &t
		}
	}
	for _, kv := range f.Meta {
		if kv.Key == "" {
			if kv.Value != "" {
				f.Errors = append(f.Errors, fmt.Sprintf("The metadata value %q has no key.", kv.Value))
			}
			continue
		}
		if p.Metadata == nil {
			p.Metadata = map[string]any{}
		}
		if _, dup := p.Metadata[kv.Key]; dup {
			f.Errors = append(f.Errors, fmt.Sprintf("The metadata key %q appears twice.", kv.Key))
			continue
		}
		if old, ok := orig[kv.Key]; ok && metaString(old) == kv.Value {
			p.Metadata[kv.Key] = old
		} else {
			p.Metadata[kv.Key] = kv.Value
		}
	}
	for _, msg := range transfer.Check(&p.NewMemory) {
		if msg == "shared_with needs permission shared" {
			continue // reported above in the form's words
		}
		f.Errors = append(f.Errors, capitalize(msg)+".")
	}
	return p, len(f.Errors) == 0
}

type formPage struct {
	Form    memoryForm
	Editing bool
}

func (s *server) newMemoryPage(c *echo.Context) error {
	f := memoryForm{Permission: shared.PermissionPrivate}
	f.padMeta()
	return s.render(c, http.StatusOK, "memory_form.html", formPage{Form: f})
}

func (s *server) renderForm(c *echo.Context, f memoryForm, editing bool) error {
	f.padMeta()
	return s.render(c, http.StatusUnprocessableEntity, "memory_form.html", formPage{Form: f, Editing: editing})
}

func (s *server) createMemory(c *echo.Context) error {
	f, err := formFromRequest(c)
	if err != nil {
		return err
	}
	p, ok := f.parse(nil)
	if !ok {
		return s.renderForm(c, f, false)
	}
	m, err := s.conn(c).SubmitMemory(c.Request().Context(), p.NewMemory)
	if err != nil {
		if msg, ok := s.formError(c, err); ok {
			f.Errors = append(f.Errors, msg)
			return s.renderForm(c, f, false)
		}
		return err
	}
	s.learnContacts(c, p.SharedWith, m)
	return c.Redirect(http.StatusSeeOther, "/memories/"+url.PathEscape(m.ID)+"?m=created")
}

// memoryID reads and checks the :id parameter, so nothing that is not a
// UUID is passed on to the server.
func memoryID(c *echo.Context) (string, error) {
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil {
		return "", echo.ErrNotFound
	}
	return id, nil
}

func (s *server) loadMemory(c *echo.Context) (*shared.Memory, error) {
	id, err := memoryID(c)
	if err != nil {
		return nil, err
	}
	return s.conn(c).GetMemory(c.Request().Context(), id)
}

type detailPage struct {
	Item   memoryItem
	Shared []sharedPerson
}

// sharedPerson is one entry of a memory's shared_with: the user id, and
// the email the signed-in user typed for it when they shared, if known.
type sharedPerson struct {
	ID    string
	Email string
}

func (s *server) showMemory(c *echo.Context) error {
	m, err := s.loadMemory(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "memory.html", detailPage{Item: s.item(c, *m), Shared: s.sharedPeople(c, m.SharedWith)})
}

// sharedPeople names the users a memory is shared with by the emails this
// user shared with them by; the rest stay ids. A failing lookup costs only
// the names, so it is logged rather than shown.
func (s *server) sharedPeople(c *echo.Context, ids []string) []sharedPerson {
	var emails map[string]string
	if s.Contacts != nil && len(ids) > 0 {
		var err error
		if emails, err = s.Contacts.Emails(c.Request().Context(), currentUser(c).ID, ids); err != nil {
			s.Logger.Warn("looking up share contacts", "error", err)
		}
	}
	out := make([]sharedPerson, 0, len(ids))
	for _, id := range ids {
		out = append(out, sharedPerson{ID: id, Email: emails[id]})
	}
	return out
}

// learnContacts remembers which typed emails the server resolved to which
// user ids after a successful share.
func (s *server) learnContacts(c *echo.Context, typed []string, m *shared.Memory) {
	if s.Contacts == nil || m == nil || len(typed) == 0 {
		return
	}
	if err := s.Contacts.Learn(c.Request().Context(), currentUser(c).ID, typed, m.SharedWith); err != nil {
		s.Logger.Warn("remembering share contacts", "error", err)
	}
}

func (s *server) editMemoryPage(c *echo.Context) error {
	m, err := s.loadMemory(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "memory_form.html", formPage{Form: formFromMemory(*m), Editing: true})
}

func (s *server) editMemory(c *echo.Context) error {
	orig, err := s.loadMemory(c)
	if err != nil {
		return err
	}
	f, err := formFromRequest(c)
	if err != nil {
		return err
	}
	f.ID = orig.ID
	p, ok := f.parse(orig.Metadata)
	if !ok {
		return s.renderForm(c, f, true)
	}
	ctx := c.Request().Context()
	args := shared.UpdateMemoryArgs{MemoryID: orig.ID}
	if p.Text != orig.Text {
		args.Text = &p.Text
	}
	if !slices.Equal(p.Tags, orig.Tags) {
		tags := p.Tags
		if tags == nil {
			tags = []string{}
		}
		args.Tags = &tags
	}
	if !sameJSON(p.Metadata, orig.Metadata) {
		meta := p.Metadata
		if meta == nil {
			meta = map[string]any{}
		}
		args.Metadata = &meta
	}
	if !sameTime(p.ExpirationDate, orig.ExpirationDate) {
		args.ExpirationDate = shared.SetTime(p.ExpirationDate)
	}
	conn := s.conn(c)
	if args.Text != nil || args.Tags != nil || args.Metadata != nil || args.ExpirationDate.IsSet {
		if _, err := conn.UpdateMemory(ctx, args); err != nil {
			if msg, ok := s.formError(c, err); ok {
				f.Errors = append(f.Errors, msg)
				return s.renderForm(c, f, true)
			}
			return err
		}
	}
	if p.Permission != orig.Permission || !sameSet(p.SharedWith, orig.SharedWith) {
		// A second call: the contract changes permissions through its own
		// tool. If it fails the text changes above are already saved, and
		// the form says so.
		m, err := conn.ModifyPermissions(ctx, shared.ModifyPermissionsArgs{MemoryID: orig.ID, Permission: p.Permission, SharedWith: p.SharedWith})
		if err != nil {
			if msg, ok := s.formError(c, err); ok {
				f.Errors = append(f.Errors, "The text, tags, metadata and expiration were saved, but the permission was not changed. "+msg)
				return s.renderForm(c, f, true)
			}
			return err
		}
		s.learnContacts(c, p.SharedWith, m)
	}
	return c.Redirect(http.StatusSeeOther, "/memories/"+url.PathEscape(orig.ID)+"?m=updated")
}

func sameJSON(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func (s *server) deleteMemoryPage(c *echo.Context) error {
	m, err := s.loadMemory(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "memory_delete.html", detailPage{Item: s.item(c, *m)})
}

func (s *server) deleteMemory(c *echo.Context) error {
	id, err := memoryID(c)
	if err != nil {
		return err
	}
	if err := s.conn(c).DeleteMemory(c.Request().Context(), id); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/memories?m=deleted")
}

// changePermission is the inline permission form of the list and detail
// pages. Existing shares are kept when the memory stays or becomes shared.
func (s *server) changePermission(c *echo.Context) error {
	orig, err := s.loadMemory(c)
	if err != nil {
		return err
	}
	perm := c.FormValue("permission")
	if !validPermission(perm) {
		return echo.NewHTTPError(http.StatusBadRequest, "Choose private, public or shared.")
	}
	args := shared.ModifyPermissionsArgs{MemoryID: orig.ID, Permission: perm}
	if perm == shared.PermissionShared {
		args.SharedWith = orig.SharedWith
		if extra := transfer.SplitList(c.FormValue("shared_with")); len(extra) > 0 {
			args.SharedWith = extra
		}
	}
	m, err := s.conn(c).ModifyPermissions(c.Request().Context(), args)
	if err != nil {
		return err
	}
	s.learnContacts(c, args.SharedWith, m)
	back := safeNext(c.FormValue("back"))
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	return c.Redirect(http.StatusSeeOther, back+sep+"m=permission")
}

// Package transfer reads memories from import files (a JSON array, JSON
// Lines, or CSV with a header) and writes exports in JSON and CSV. Import
// files are untrusted: every row is checked against the server's limits so
// the preview can show each problem before anything is stored.
package transfer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"picard.dev/shared"
)

// Format is an import or export file format.
type Format string

// The supported formats.
const (
	JSON  Format = "json"
	JSONL Format = "jsonl"
	CSV   Format = "csv"
)

// Limits of the contract, checked before anything is sent.
const (
	MaxRows          = 1000 // submit_memories accepts at most this many
	MaxTextLen       = 32768
	MaxTags          = 32
	MaxTagLen        = 64
	MaxMetadataBytes = 8 * 1024
	MaxFileBytes     = 10 << 20
)

// Row is one memory read from a file, with the problems found in it.
type Row struct {
	Line   int // 1-based line (CSV, JSONL) or element number (JSON)
	Memory shared.NewMemory
	Errors []string
}

// Result is a parsed file.
type Result struct {
	Rows []Row
	// Errors concern the file as a whole (unreadable, too many rows).
	Errors []string
}

// OK reports whether the whole file can be imported.
func (r *Result) OK() bool {
	if len(r.Errors) > 0 || len(r.Rows) == 0 {
		return false
	}
	for _, row := range r.Rows {
		if len(row.Errors) > 0 {
			return false
		}
	}
	return true
}

// Memories returns the parsed memories in file order.
func (r *Result) Memories() []shared.NewMemory {
	out := make([]shared.NewMemory, len(r.Rows))
	for i, row := range r.Rows {
		out[i] = row.Memory
	}
	return out
}

// Detect guesses the format of data: '[' starts a JSON array, '{' JSON
// Lines, anything else CSV.
func Detect(data []byte) Format {
	t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\uFEFF")), " \t\r\n")
	switch {
	case len(t) > 0 && t[0] == '[':
		return JSON
	case len(t) > 0 && t[0] == '{':
		return JSONL
	}
	return CSV
}

// Parse reads data in format f ("" detects it).
func Parse(f Format, data []byte) *Result {
	res := &Result{}
	if len(data) > MaxFileBytes {
		res.Errors = append(res.Errors, fmt.Sprintf("the file is larger than %d MiB", MaxFileBytes>>20))
		return res
	}
	if !utf8.Valid(data) {
		res.Errors = append(res.Errors, "the file is not UTF-8 text")
		return res
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	if f == "" {
		f = Detect(data)
	}
	switch f {
	case JSON:
		parseJSON(data, res)
	case JSONL:
		parseJSONL(data, res)
	case CSV:
		parseCSV(data, res)
	default:
		res.Errors = append(res.Errors, fmt.Sprintf("unknown format %q", f))
	}
	if len(res.Errors) == 0 && len(res.Rows) == 0 {
		res.Errors = append(res.Errors, "the file contains no memories")
	}
	if len(res.Rows) > MaxRows {
		res.Errors = append(res.Errors, fmt.Sprintf("the file has %d memories; at most %d can be imported at once", len(res.Rows), MaxRows))
	}
	return res
}

// record is the JSON shape of an imported memory. Fields of exported
// memories (id, owner_id, created_at, …) are ignored, so an export can be
// imported again.
type record struct {
	Text           *string         `json:"text"`
	Permission     string          `json:"permission"`
	Tags           json.RawMessage `json:"tags"`
	Metadata       json.RawMessage `json:"metadata"`
	ExpirationDate *string         `json:"expiration_date"`
	SharedWith     json.RawMessage `json:"shared_with"`
}

func parseJSON(data []byte, res *Result) {
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		res.Errors = append(res.Errors, "not a JSON array: "+jsonErr(err))
		return
	}
	for i, raw := range items {
		res.Rows = append(res.Rows, rowFromJSON(i+1, raw))
		if len(res.Rows) > MaxRows {
			return
		}
	}
}

func parseJSONL(data []byte, res *Result) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), MaxFileBytes)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		res.Rows = append(res.Rows, rowFromJSON(line, sc.Bytes()))
		if len(res.Rows) > MaxRows {
			return
		}
	}
	if err := sc.Err(); err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("line %d: %v", line+1, err))
	}
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("expected %s, found %s", te.Type, te.Value)
	}
	return err.Error()
}

func rowFromJSON(line int, raw []byte) Row {
	row := Row{Line: line}
	var rec record
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&rec); err != nil {
		row.Errors = append(row.Errors, "not a JSON object: "+jsonErr(err))
		return row
	}
	if dec.More() {
		row.Errors = append(row.Errors, "extra data after the JSON object")
		return row
	}
	if rec.Text == nil {
		row.Errors = append(row.Errors, "text is missing")
	} else {
		row.Memory.Text = *rec.Text
	}
	row.Memory.Permission = rec.Permission
	row.Memory.Tags = stringList(&row, "tags", rec.Tags)
	row.Memory.SharedWith = stringList(&row, "shared_with", rec.SharedWith)
	if len(rec.Metadata) > 0 && string(rec.Metadata) != "null" {
		row.Memory.Metadata = metadataObject(&row, rec.Metadata)
	}
	if rec.ExpirationDate != nil && *rec.ExpirationDate != "" {
		row.Memory.ExpirationDate = expiration(&row, *rec.ExpirationDate)
	}
	validate(&row)
	return row
}

// stringList accepts a JSON array of strings or one comma-separated string.
func stringList(row *Row, field string, raw json.RawMessage) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return cleanList(list)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return SplitList(s)
	}
	row.Errors = append(row.Errors, field+" must be a list of strings")
	return nil
}

func cleanList(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// SplitList splits a comma- or newline-separated list, dropping blanks.
func SplitList(s string) []string {
	return cleanList(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }))
}

func metadataObject(row *Row, raw []byte) map[string]any {
	if len(raw) > MaxMetadataBytes {
		row.Errors = append(row.Errors, fmt.Sprintf("metadata is larger than %d KiB", MaxMetadataBytes/1024))
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		row.Errors = append(row.Errors, "metadata must be a JSON object")
		return nil
	}
	return m
}

// ParseTime accepts RFC 3339, or a date (midnight UTC).
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a YYYY-MM-DD date", s)
}

func expiration(row *Row, s string) *time.Time {
	t, err := ParseTime(s)
	if err != nil {
		row.Errors = append(row.Errors, "expiration_date: "+err.Error())
		return nil
	}
	return &t
}

// csvColumns are the columns read from a CSV file; others are ignored.
var csvColumns = map[string]bool{"text": true, "permission": true, "tags": true, "metadata": true, "expiration_date": true, "shared_with": true}

func parseCSV(data []byte, res *Result) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1 // per-row errors instead of failing the file
	header, err := r.Read()
	if err != nil {
		if err == io.EOF {
			res.Errors = append(res.Errors, "the file is empty")
		} else {
			res.Errors = append(res.Errors, "the header is not valid CSV: "+err.Error())
		}
		return
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if csvColumns[h] {
			if _, dup := col[h]; dup {
				res.Errors = append(res.Errors, fmt.Sprintf("column %q appears twice", h))
				return
			}
			col[h] = i
		}
	}
	if _, ok := col["text"]; !ok {
		res.Errors = append(res.Errors, `the header has no "text" column`)
		return
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			// A quoting error leaves the reader unable to find the next
			// record, so it ends the file rather than one row.
			res.Errors = append(res.Errors, "invalid CSV: "+err.Error())
			return
		}
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // blank line
		}
		res.Rows = append(res.Rows, rowFromCSV(line, header, col, rec))
		if len(res.Rows) > MaxRows {
			return
		}
	}
}

func rowFromCSV(line int, header []string, col map[string]int, rec []string) Row {
	row := Row{Line: line}
	if len(rec) != len(header) {
		row.Errors = append(row.Errors, fmt.Sprintf("has %d fields, the header has %d", len(rec), len(header)))
		return row
	}
	get := func(name string) string {
		if i, ok := col[name]; ok {
			return rec[i]
		}
		return ""
	}
	row.Memory.Text = get("text")
	row.Memory.Permission = strings.TrimSpace(get("permission"))
	row.Memory.Tags = SplitList(get("tags"))
	row.Memory.SharedWith = SplitList(get("shared_with"))
	if m := strings.TrimSpace(get("metadata")); m != "" {
		row.Memory.Metadata = metadataObject(&row, []byte(m))
	}
	if e := strings.TrimSpace(get("expiration_date")); e != "" {
		row.Memory.ExpirationDate = expiration(&row, e)
	}
	validate(&row)
	return row
}

// validate applies the contract's limits.
func validate(row *Row) {
	m := &row.Memory
	row.Errors = append(row.Errors, Check(m)...)
}

// Check returns the problems of a memory against the contract's limits, as
// sentences for the user; the create and edit forms use it too.
func Check(m *shared.NewMemory) []string {
	var errs []string
	n := utf8.RuneCountInString(m.Text)
	switch {
	case strings.TrimSpace(m.Text) == "":
		errs = append(errs, "text is empty")
	case n > MaxTextLen:
		errs = append(errs, fmt.Sprintf("text has %d characters; at most %d are allowed", n, MaxTextLen))
	}
	switch m.Permission {
	case "", shared.PermissionPrivate, shared.PermissionPublic, shared.PermissionShared:
	default:
		errs = append(errs, fmt.Sprintf("permission %q is not private, public or shared", m.Permission))
	}
	if len(m.Tags) > MaxTags {
		errs = append(errs, fmt.Sprintf("%d tags; at most %d are allowed", len(m.Tags), MaxTags))
	}
	for _, t := range m.Tags {
		if utf8.RuneCountInString(t) > MaxTagLen {
			errs = append(errs, fmt.Sprintf("tag %q is longer than %d characters", truncate(t, 20), MaxTagLen))
		}
	}
	if m.Metadata != nil {
		if b, _ := json.Marshal(m.Metadata); len(b) > MaxMetadataBytes {
			errs = append(errs, fmt.Sprintf("metadata is larger than %d KiB", MaxMetadataBytes/1024))
		}
	}
	if len(m.SharedWith) > 0 && m.Permission != shared.PermissionShared {
		errs = append(errs, "shared_with needs permission shared")
	}
	return errs
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

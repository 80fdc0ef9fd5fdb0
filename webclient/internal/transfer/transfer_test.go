package transfer

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"picard.dev/shared"
)

func TestParse(t *testing.T) {
	long := strings.Repeat("x", MaxTextLen+1)
	tests := []struct {
		name      string
		format    Format
		in        string
		rows      int
		ok        bool
		rowErrs   map[int]string // row index → substring of its error
		fileError string
	}{
		{name: "json array", in: `[{"text":"a","tags":["x","y"],"metadata":{"k":1}},{"text":"b","permission":"public","expiration_date":"2020-01-01"}]`, rows: 2, ok: true},
		{name: "json export round trip ignores extra fields", in: `[{"id":"1","owner_id":"2","text":"a","created_at":"2020-01-01T00:00:00Z","expired":false}]`, rows: 1, ok: true},
		{name: "json bad rows", in: `[{"text":""},{"tags":"a"},{"text":"c","permission":"secret"},{"text":"d","metadata":[1]},"str"]`, rows: 5,
			rowErrs: map[int]string{0: "text is empty", 1: "text is missing", 2: "secret", 3: "metadata must be a JSON object", 4: "not a JSON object"}},
		{name: "json not an array", format: JSON, in: `{"text":"a"}`, fileError: "not a JSON array"},
		{name: "jsonl", in: "{\"text\":\"a\"}\n\n{\"text\":\"b\",\"tags\":\"x, y\"}\n", rows: 2, ok: true},
		{name: "jsonl bad line", in: "{\"text\":\"a\"}\n{oops\n", rows: 2, rowErrs: map[int]string{1: "not a JSON object"}},
		{name: "jsonl trailing data", format: JSONL, in: `{"text":"a"} {"text":"b"}`, rows: 1, rowErrs: map[int]string{0: "extra data"}},
		{name: "csv", in: "text,tags,permission,metadata,expiration_date\n\"hello, world\",\"a,b\",public,\"{\"\"k\"\":\"\"v\"\"}\",2030-01-01T00:00:00Z\n", rows: 1, ok: true},
		{name: "csv bad rows", in: "text,permission,expiration_date\n,private,\nok,nope,\nok,,tomorrow\nok\n", rows: 4,
			rowErrs: map[int]string{0: "text is empty", 1: "nope", 2: "expiration_date", 3: "has 1 fields"}},
		{name: "csv no text column", in: "body\nx\n", fileError: `no "text" column`},
		{name: "csv shared without permission", in: "text,shared_with\nx,bob@example.com\n", rows: 1, rowErrs: map[int]string{0: "shared_with needs permission shared"}},
		{name: "too long", in: `[{"text":"` + long + `"}]`, rows: 1, rowErrs: map[int]string{0: "at most 32768"}},
		{name: "too many tags", in: `[{"text":"a","tags":[` + strings.TrimSuffix(strings.Repeat(`"t",`, 33), ",") + `]}]`, rows: 1, rowErrs: map[int]string{0: "33 tags"}},
		{name: "empty", in: "", fileError: "empty"},
		{name: "empty array", in: "[]", fileError: "no memories"},
		{name: "not utf8", in: "text\n\xff\n", fileError: "UTF-8"},
		{name: "bom", in: "\uFEFFtext\nhello\n", rows: 1, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Parse(tt.format, []byte(tt.in))
			if tt.fileError != "" {
				if len(res.Errors) == 0 || !strings.Contains(strings.Join(res.Errors, ";"), tt.fileError) {
					t.Fatalf("file errors %v, want %q", res.Errors, tt.fileError)
				}
				return
			}
			if len(res.Errors) > 0 {
				t.Fatalf("file errors %v", res.Errors)
			}
			if len(res.Rows) != tt.rows {
				t.Fatalf("%d rows, want %d: %+v", len(res.Rows), tt.rows, res.Rows)
			}
			if res.OK() != tt.ok {
				t.Fatalf("OK() = %v, want %v: %+v", res.OK(), tt.ok, res.Rows)
			}
			for i, row := range res.Rows {
				want, bad := tt.rowErrs[i]
				got := strings.Join(row.Errors, "; ")
				if bad != (got != "") || (bad && !strings.Contains(got, want)) {
					t.Errorf("row %d errors %q, want %q", i, got, want)
				}
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	res := Parse("", []byte("text,tags,permission,metadata,expiration_date,shared_with\n\"multi\nline\",\" a , b \",shared,\"{\"\"n\"\":2}\",2030-01-02,\"bob@example.com\"\n"))
	if !res.OK() {
		t.Fatalf("%+v", res)
	}
	m := res.Rows[0].Memory
	if m.Text != "multi\nline" || strings.Join(m.Tags, "|") != "a|b" || m.Permission != "shared" || m.Metadata["n"] != 2.0 ||
		!m.ExpirationDate.Equal(time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)) || m.SharedWith[0] != "bob@example.com" {
		t.Fatalf("%+v", m)
	}
	if res.Rows[0].Line != 2 {
		t.Errorf("line %d, want 2", res.Rows[0].Line)
	}
}

func TestTooManyRows(t *testing.T) {
	var b strings.Builder
	b.WriteString("text\n")
	for range MaxRows + 5 {
		b.WriteString("x\n")
	}
	res := Parse(CSV, []byte(b.String()))
	if res.OK() || !strings.Contains(strings.Join(res.Errors, ""), "at most 1000") {
		t.Fatalf("errors %v", res.Errors)
	}
}

// TestExportRoundTrip: what export writes, import reads back unchanged.
func TestExportRoundTrip(t *testing.T) {
	exp := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	ms := []shared.Memory{
		{ID: "1", Text: "plain", Permission: "private", Tags: []string{}, CreatedAt: exp, UpdatedAt: exp},
		{ID: "2", Text: "with \"quotes\", commas\nand lines", Permission: "public", Tags: []string{"a", "b"}, Metadata: map[string]any{"k": "v"}, ExpirationDate: &exp},
	}
	var csvBuf, jsonBuf bytes.Buffer
	cw, _ := NewCSVWriter(&csvBuf)
	jw, _ := NewJSONWriter(&jsonBuf)
	for _, m := range ms {
		cw.Write(m)
		jw.Write(m)
	}
	cw.Flush()
	jw.Close()
	var decoded []shared.Memory
	if err := json.Unmarshal(jsonBuf.Bytes(), &decoded); err != nil || len(decoded) != 2 {
		t.Fatalf("JSON export is not a valid array: %v", err)
	}
	for name, res := range map[string]*Result{"csv": Parse("", csvBuf.Bytes()), "json": Parse("", jsonBuf.Bytes())} {
		if !res.OK() || len(res.Rows) != 2 {
			t.Fatalf("%s: %+v", name, res)
		}
		got := res.Rows[1].Memory
		if got.Text != ms[1].Text || strings.Join(got.Tags, ",") != "a,b" || got.Metadata["k"] != "v" || !got.ExpirationDate.Equal(exp) || got.Permission != "public" {
			t.Errorf("%s: %+v", name, got)
		}
	}
}

// fuzzParse checks the invariants every parser keeps on any input: no
// panic, every row either valid against Check or carrying an error, and
// OK only when nothing is wrong.
func fuzzParse(t *testing.T, f Format, data []byte) {
	res := Parse(f, data)
	if res.OK() {
		if len(res.Rows) == 0 || len(res.Rows) > MaxRows {
			t.Fatalf("OK with %d rows", len(res.Rows))
		}
		for _, r := range res.Rows {
			if errs := Check(&r.Memory); len(errs) > 0 {
				t.Fatalf("OK row fails Check: %v", errs)
			}
		}
	}
}

func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`[{"text":"a","tags":["x"],"metadata":{"k":1},"expiration_date":"2020-01-01"}]`))
	f.Add([]byte(`[{"text":""},1,null]`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, JSON, data) })
}

func FuzzParseJSONL(f *testing.F) {
	f.Add([]byte("{\"text\":\"a\"}\n{\"text\":\"b\",\"tags\":\"x,y\"}\n"))
	f.Add([]byte("{oops\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, JSONL, data) })
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte("text,tags,permission\n\"a, b\",x,public\n"))
	f.Add([]byte("text\n\"unterminated\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, CSV, data) })
}

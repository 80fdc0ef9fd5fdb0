package transfer

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"strings"
	"time"

	"picard.dev/shared"
)

// CSVHeader is the header of CSV exports; its text, permission, tags,
// metadata, expiration_date and shared_with columns are what import reads.
var CSVHeader = []string{"id", "text", "permission", "tags", "metadata", "expiration_date", "shared_with", "expired", "created_at", "updated_at"}

// CSVWriter streams memories as CSV.
type CSVWriter struct{ w *csv.Writer }

// NewCSVWriter writes the header and returns the writer.
func NewCSVWriter(w io.Writer) (*CSVWriter, error) {
	cw := &CSVWriter{w: csv.NewWriter(w)}
	return cw, cw.w.Write(CSVHeader)
}

// Write writes one memory.
func (cw *CSVWriter) Write(m shared.Memory) error {
	meta := ""
	if len(m.Metadata) > 0 {
		b, err := json.Marshal(m.Metadata)
		if err != nil {
			return err
		}
		meta = string(b)
	}
	exp := ""
	if m.ExpirationDate != nil {
		exp = m.ExpirationDate.UTC().Format(time.RFC3339)
	}
	expired := "false"
	if m.Expired {
		expired = "true"
	}
	return cw.w.Write([]string{m.ID, m.Text, m.Permission, strings.Join(m.Tags, ","), meta, exp,
		strings.Join(m.SharedWith, ","), expired, m.CreatedAt.UTC().Format(time.RFC3339), m.UpdatedAt.UTC().Format(time.RFC3339)})
}

// Flush flushes buffered rows and reports a write error.
func (cw *CSVWriter) Flush() error {
	cw.w.Flush()
	return cw.w.Error()
}

// JSONWriter streams memories as one JSON array.
type JSONWriter struct {
	w     io.Writer
	count int
}

// NewJSONWriter opens the array.
func NewJSONWriter(w io.Writer) (*JSONWriter, error) {
	_, err := io.WriteString(w, "[\n")
	return &JSONWriter{w: w}, err
}

// Write writes one memory.
func (jw *JSONWriter) Write(m shared.Memory) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if jw.count > 0 {
		if _, err := io.WriteString(jw.w, ",\n"); err != nil {
			return err
		}
	}
	jw.count++
	_, err = jw.w.Write(b)
	return err
}

// Close closes the array.
func (jw *JSONWriter) Close() error {
	_, err := io.WriteString(jw.w, "\n]\n")
	return err
}

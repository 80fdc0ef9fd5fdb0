package mcp

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/shared"
)

// forOptions make jsonschema.For describe the wire forms of times.
var forOptions = jsonschema.ForOptions{TypeSchemas: map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[time.Time]():           {Type: "string", Format: "date-time"},
	reflect.TypeFor[shared.NullableTime](): {Types: []string{"string", "null"}, Format: "date-time"},
}}

// nullable names the properties where JSON null means something (no
// expiration, never seen); everywhere else the "null" that jsonschema.For
// adds for Go pointers, slices and maps is dropped, since null is neither
// sent nor accepted there.
var nullable = []string{"expiration_date", "last_seen_at"}

// uuidProps are the properties that always hold a UUID.
var uuidProps = []string{"id", "owner_id", "memory_id", "user_id"}

// schemaFor infers the schema of T and tightens it where struct tags cannot
// say enough: formats, enums, and the contract's limits. output selects the
// reading of shared_with, which holds UUIDs in results but ids or emails in
// arguments.
func schemaFor[T any](output bool) *jsonschema.Schema {
	opts := forOptions
	s, err := jsonschema.ForType(reflect.TypeFor[T](), &opts)
	if err != nil {
		panic(fmt.Sprintf("schema of %v: %v", reflect.TypeFor[T](), err))
	}
	refine(s, output)
	return s
}

func refine(s *jsonschema.Schema, output bool) {
	if s == nil {
		return
	}
	for name, p := range s.Properties {
		if len(p.Types) == 2 && slices.Contains(p.Types, "null") && !slices.Contains(nullable, name) {
			p.Type = p.Types[0]
			if p.Type == "null" {
				p.Type = p.Types[1]
			}
			p.Types = nil
		}
		switch {
		case slices.Contains(uuidProps, name):
			p.Format = "uuid"
		case name == "memory_ids":
			p.Items.Format = "uuid"
			p.MinItems, p.MaxItems = ptr(1), ptr(memory.MaxBatch)
		case name == "shared_with":
			if output {
				p.Items.Format = "uuid"
			}
			p.MaxItems = ptr(memory.MaxSharedWith)
		case name == "permission":
			p.Enum = []any{shared.PermissionPrivate, shared.PermissionPublic, shared.PermissionShared}
		case name == "mode":
			p.Enum = []any{shared.SearchHybrid, shared.SearchVector, shared.SearchLexical}
		case name == "sort":
			p.Enum = []any{string(memory.SortCreated), string(memory.SortUpdated)}
		case name == "order":
			p.Enum = []any{string(memory.Desc), string(memory.Asc)}
		case name == "text" && !output:
			p.MinLength, p.MaxLength = ptr(1), ptr(memory.MaxTextChars)
		case name == "tags" && p.Items != nil:
			p.MaxItems = ptr(memory.MaxTags)
			p.Items.MinLength, p.Items.MaxLength = ptr(1), ptr(memory.MaxTagChars)
		case (name == "query" || name == "prompt") && !output:
			p.MinLength, p.MaxLength = ptr(1), ptr(memory.MaxQueryChars)
		case name == "limit":
			p.Minimum = ptrF(1)
		case name == "memories" && !output:
			p.MinItems, p.MaxItems = ptr(1), ptr(memory.MaxBatch)
		}
		refine(p, output)
		refine(p.Items, output)
	}
	refine(s.Items, output)
}

func ptr(n int) *int          { return &n }
func ptrF(f float64) *float64 { return &f }

// setMax sets the maximum of a top-level integer property (a tool's limit).
func setMax(s *jsonschema.Schema, prop string, max int) {
	if p := s.Properties[prop]; p != nil {
		p.Maximum = ptrF(float64(max))
	}
}

// resolve prepares a schema for validation; a schema that does not resolve
// is a programming error caught by every test.
func resolve(s *jsonschema.Schema) *jsonschema.Resolved {
	r, err := s.Resolve(&jsonschema.ResolveOptions{ValidateDefaults: true})
	if err != nil {
		panic(fmt.Sprintf("resolve schema: %v", err))
	}
	return r
}

// schemaPath matches the JSON pointers of schema locations in validation
// errors, to turn them into argument names.
var schemaPath = regexp.MustCompile(`validating (/[^:]*)`)

// validateArgs checks raw tool arguments against the tool's input schema, the
// same way on both transports, and returns them as a JSON object ready to
// decode ({} when absent). The error names the argument at fault.
func validateArgs(raw json.RawMessage, r *jsonschema.Resolved) (json.RawMessage, error) {
	var v any = map[string]any{}
	if len(raw) > 0 && string(raw) != "null" {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, &argsError{msg: "arguments: must be a JSON object"}
		}
		v = m
	}
	if err := r.Validate(&v); err != nil {
		return nil, &argsError{msg: describeSchemaError(err)}
	}
	// JSON Schema validators treat "format" as an annotation; date-times
	// are checked here so that a bad one is named like any other bad
	// argument instead of failing the decoding.
	if err := checkDateTimes(v, r.Schema(), ""); err != nil {
		return nil, err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, &argsError{msg: "arguments: " + err.Error()}
	}
	return out, nil
}

// describeSchemaError rewrites "validating root: validating /properties/tags/items: …"
// into "tags[]: …", which names the argument the way the domain's errors do.
func describeSchemaError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "validating root: ")
	locs := schemaPath.FindAllStringSubmatch(msg, -1)
	if len(locs) == 0 {
		return "arguments: " + msg
	}
	last := locs[len(locs)-1]
	rest := msg[strings.LastIndex(msg, last[0])+len(last[0]):]
	rest = strings.TrimLeft(rest, ": ")
	name := strings.NewReplacer("/properties/", ".", "/items", "[]", "/additionalProperties", "").Replace(last[1])
	name = strings.TrimPrefix(name, ".")
	if name == "" {
		name = "arguments"
	}
	return name + ": " + rest
}

// checkDateTimes checks every string at a "format": "date-time" location of
// v against RFC 3339, naming it by its path (memories[2].expiration_date).
func checkDateTimes(v any, s *jsonschema.Schema, path string) error {
	if s == nil {
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if err := checkDateTimes(val, s.Properties[k], p); err != nil {
				return err
			}
		}
	case []any:
		for i, val := range x {
			if err := checkDateTimes(val, s.Items, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case string:
		if s.Format == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				return &argsError{msg: fmt.Sprintf("%s: %q is not an RFC 3339 date-time such as 2030-01-31T12:00:00Z", path, x)}
			}
		}
	}
	return nil
}

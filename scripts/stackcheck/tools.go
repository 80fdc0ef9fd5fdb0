package stackcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/shared"
)

// ToolError is a refused tool call: from /api/tools, the HTTP status, the
// error body and the WWW-Authenticate header; from MCP, the "code: message"
// text of an isError result (Status 0), or a transport error.
type ToolError struct {
	Status          int
	Code            string
	Message         string
	WWWAuthenticate string
}

func (e *ToolError) Error() string {
	s := e.Code + ": " + e.Message
	if e.Status != 0 {
		s = fmt.Sprintf("HTTP %d %s", e.Status, s)
	}
	return s
}

// codeOf is the contract error code of err, or "" when err is not a ToolError.
func codeOf(err error) string {
	var te *ToolError
	if errors.As(err, &te) {
		return te.Code
	}
	return ""
}

// Caller calls tools, over /api/tools or over MCP.
type Caller interface {
	// Call runs tool with args and decodes the result into out (if not nil).
	Call(ctx context.Context, tool string, args, out any) error
	// Transport names the transport: "api" or "mcp".
	Transport() string
}

// APICaller calls POST /api/tools with a bearer token.
type APICaller struct {
	HTTP  *http.Client
	Base  string // mcpserver base URL
	Token string
}

// Transport implements Caller.
func (a *APICaller) Transport() string { return "api" }

// Call implements Caller.
func (a *APICaller) Call(ctx context.Context, tool string, args, out any) error {
	data, err := json.Marshal(args)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]json.RawMessage{"tool": mustJSON(tool), "data": data})
	if err != nil {
		return err
	}
	return a.post(ctx, body, out)
}

// post sends a raw /api/tools body.
func (a *APICaller) post(ctx context.Context, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.Base+"/api/tools", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var eb shared.ErrorBody
		if err := json.Unmarshal(rb, &eb); err != nil || eb.Error.Code == "" {
			return fmt.Errorf("HTTP %d without a JSON error body: %s", resp.StatusCode, snippet(rb))
		}
		return &ToolError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, WWWAuthenticate: resp.Header.Get("WWW-Authenticate")}
	}
	var r shared.ToolResponse
	if err := json.Unmarshal(rb, &r); err != nil {
		return fmt.Errorf("response body: %w: %s", err, snippet(rb))
	}
	if r.Result == nil {
		return fmt.Errorf("response without result: %s", snippet(rb))
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			return fmt.Errorf("result: %w: %s", err, snippet(r.Result))
		}
	}
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// bearer adds a bearer token to every request.
type bearer struct {
	base  http.RoundTripper
	token string
}

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(req)
}

// MCPCaller calls tools over an MCP session.
type MCPCaller struct {
	Session *mcp.ClientSession
}

// ConnectMCP opens a streamable HTTP MCP session to endpoint with token.
func ConnectMCP(ctx context.Context, base http.RoundTripper, endpoint, token string) (*MCPCaller, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	hc := &http.Client{Transport: retry429{bearer{base, token}}}
	client := mcp.NewClient(&mcp.Implementation{Name: "picard-stackcheck", Version: "1"}, nil)
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		return nil, err
	}
	return &MCPCaller{Session: s}, nil
}

// Transport implements Caller.
func (m *MCPCaller) Transport() string { return "mcp" }

// Close ends the session.
func (m *MCPCaller) Close() error { return m.Session.Close() }

// Call implements Caller.
func (m *MCPCaller) Call(ctx context.Context, tool string, args, out any) error {
	res, err := m.Session.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return &ToolError{Code: "protocol", Message: err.Error()}
	}
	text := ""
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			text += t.Text
		}
	}
	if res.IsError {
		code, msg, ok := strings.Cut(text, ": ")
		if !ok || strings.ContainsAny(code, " \n") {
			return &ToolError{Code: "", Message: text}
		}
		return &ToolError{Code: code, Message: msg}
	}
	if out == nil {
		return nil
	}
	var raw []byte
	if res.StructuredContent != nil {
		if raw, err = json.Marshal(res.StructuredContent); err != nil {
			return err
		}
	} else {
		raw = []byte(text)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("tool result (no structured content, and the text is not its JSON): %w: %s", err, snippet(raw))
	}
	return nil
}

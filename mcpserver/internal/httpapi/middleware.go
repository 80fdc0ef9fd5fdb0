package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/mcp"
	"picard.dev/shared"
)

// httpError is an error with its HTTP status and body decided already
// (authentication, origin, limits); other errors go through mcp.Classify.
type httpError struct {
	status int
	body   shared.APIError
	header http.Header
}

func (e *httpError) Error() string { return e.body.Code + ": " + e.body.Message }

// jsonErrors writes the error a handler returns as the contract's JSON
// error body. It is the one place /mcp and /api errors are written.
func (a *API) jsonErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		err := next(c)
		if err == nil {
			return nil
		}
		if r, uerr := echo.UnwrapResponse(c.Response()); uerr == nil && r.Committed {
			return nil // the handler already answered
		}
		return a.writeError(c, err)
	}
}

func (a *API) writeError(c *echo.Context, err error) error {
	var he *httpError
	var status int
	var body shared.APIError
	if errors.As(err, &he) {
		status, body = he.status, he.body
		for k, vs := range he.header {
			for _, v := range vs {
				c.Response().Header().Add(k, v)
			}
		}
	} else {
		status, body = mcp.Classify(err)
		var se *mcp.ScopeError
		if errors.As(err, &se) {
			c.Response().Header().Set("WWW-Authenticate", fmt.Sprintf(
				`Bearer error="insufficient_scope", scope=%q, resource_metadata=%q`, se.Scope, a.o.ResourceMetadataURL))
		}
		if status == http.StatusInternalServerError {
			a.o.Logger.Error("request failed", "path", c.Request().URL.Path, "error", err)
		}
	}
	return c.JSON(status, shared.ErrorBody{Error: body})
}

// originAllowed reports whether a browser Origin may call /mcp and /api.
// A request without Origin is not from a browser page and is allowed; the
// bearer token is what protects it.
func (a *API) originAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	o := strings.TrimRight(origin, "/")
	return slices.Contains(a.o.AllowedOrigins, "*") || slices.ContainsFunc(a.o.AllowedOrigins, func(s string) bool {
		return strings.EqualFold(s, o)
	})
}

// origin refuses browser Origins not in AllowedOrigins (DNS rebinding and
// cross-site requests) and lets allowed ones read responses (CORS).
func (a *API) origin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		origin := c.Request().Header.Get("Origin")
		if !a.originAllowed(origin) {
			return &httpError{status: http.StatusForbidden, body: shared.APIError{
				Code: shared.CodePermissionDenied, Message: fmt.Sprintf("origin %q is not allowed", origin)}}
		}
		if origin != "" {
			h := c.Response().Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, WWW-Authenticate, Retry-After")
		}
		return next(c)
	}
}

// preflight answers CORS preflight requests of allowed origins.
func (a *API) preflight(c *echo.Context) error {
	origin := c.Request().Header.Get("Origin")
	if origin == "" || !a.originAllowed(origin) {
		return &httpError{status: http.StatusForbidden, body: shared.APIError{
			Code: shared.CodePermissionDenied, Message: fmt.Sprintf("origin %q is not allowed", origin)}}
	}
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID")
	h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, WWW-Authenticate, Retry-After")
	h.Set("Access-Control-Max-Age", "600")
	return c.NoContent(http.StatusNoContent)
}

// bearerToken extracts the token of "Authorization: Bearer …".
func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// authenticate verifies the bearer token and puts the identity in the
// request context. Challenges follow RFC 6750 and RFC 9728: no token gets
// a bare challenge naming the resource metadata, a bad token adds
// error="invalid_token". (The SDK's own middleware omits error=.)
func (a *API) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		req := c.Request()
		tok := bearerToken(req)
		if tok == "" {
			return &httpError{
				status: http.StatusUnauthorized,
				body:   shared.APIError{Code: shared.CodeUnauthenticated, Message: "a bearer access token is required"},
				header: http.Header{"Www-Authenticate": {fmt.Sprintf(`Bearer resource_metadata=%q`, a.o.ResourceMetadataURL)}},
			}
		}
		id, err := a.o.Verifier.Verify(req.Context(), tok)
		if err != nil || id == nil {
			if err != nil && !errors.Is(err, auth.ErrInvalidToken) && !errors.Is(err, auth.ErrNoToken) {
				// The verifier could not decide (database down): not the
				// client's fault, and not a reason to discard its token.
				if status, _ := mcp.Classify(err); status == http.StatusServiceUnavailable {
					a.o.Logger.Warn("verify token", "error", err)
				} else {
					a.o.Logger.Error("verify token", "error", err)
				}
				return &httpError{status: http.StatusServiceUnavailable, body: shared.APIError{
					Code: shared.CodeUnavailable, Message: "the access token could not be checked; try again"}}
			}
			return &httpError{
				status: http.StatusUnauthorized,
				body:   shared.APIError{Code: shared.CodeUnauthenticated, Message: "the access token is invalid, expired or revoked"},
				header: http.Header{"Www-Authenticate": {fmt.Sprintf(`Bearer resource_metadata=%q, error="invalid_token"`, a.o.ResourceMetadataURL)}},
			}
		}
		key := id.TokenID
		if key == "" {
			sum := sha256.Sum256([]byte(tok))
			key = hex.EncodeToString(sum[:16])
		}
		ctx := context.WithValue(auth.WithIdentity(req.Context(), id), rateKey{}, key)
		c.SetRequest(req.WithContext(ctx))
		return next(c)
	}
}

type rateKey struct{}

// deadline bounds each request by RequestTimeout: the context (so tool
// handlers and database calls stop) and, because the SDK's handler sets no
// write timeout, the connection's write deadline. Long-lived GET streams of
// stateful sessions are exempt: they end when the client leaves.
func (a *API) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		req := c.Request()
		if req.Method == http.MethodGet {
			return next(c)
		}
		ctx, cancel := context.WithTimeout(req.Context(), a.o.RequestTimeout)
		defer cancel()
		// Some writers (httptest recorders) cannot set deadlines; the
		// context still applies.
		_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(a.o.RequestTimeout + 5*time.Second))
		c.SetRequest(req.WithContext(ctx))
		return next(c)
	}
}

// readBody reads at most limit bytes; a longer body is too_large.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &httpError{status: http.StatusBadRequest, body: shared.APIError{
			Code: shared.CodeInvalidArgument, Message: "the request body could not be read"}}
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(limit)
	}
	return b, nil
}

func tooLarge(limit int64) error {
	return &httpError{status: http.StatusRequestEntityTooLarge, body: shared.APIError{
		Code: shared.CodeTooLarge, Message: fmt.Sprintf("the request body exceeds %d bytes", limit)}}
}

// mcpBodyLimit applies the contract's body limits to /mcp: 10 MiB for a
// call of a batch tool, 1 MiB for anything else. The body is read here
// (it is small by then) and handed on to the SDK.
func (a *API) mcpBodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		req := c.Request()
		body, err := readBody(req, MaxBatchBody)
		if err != nil {
			return err
		}
		if len(body) > MaxBody && !a.batchCall(body) {
			return tooLarge(MaxBody)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		return next(c)
	}
}

// batchCall reports whether a JSON-RPC body is a single tools/call of a
// batch tool.
func (a *API) batchCall(body []byte) bool {
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		return false
	}
	return msg.Method == "tools/call" && a.o.Registry.IsBatch(msg.Params.Name)
}

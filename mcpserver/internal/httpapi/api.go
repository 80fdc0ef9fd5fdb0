// Package httpapi is the HTTP surface of the MCP tools: /mcp (the go-sdk
// streamable HTTP handler) and POST /api/tools (plain JSON), both behind the
// same Origin check, bearer authentication, per-token rate limit, body
// limits and deadlines; GET /openapi.json and /docs (Swagger UI from
// embedded assets); /healthz, /readyz and /metrics.
//
// Errors of every route are JSON in the contract's shape, produced by one
// function from the classification in mcp.Classify, which also shapes the
// MCP tool errors: a failure reads the same on both transports.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/mcp"
	"picard.dev/shared"
)

// Body limits of the contract.
const (
	MaxBody      = 1 << 20  // 1 MiB
	MaxBatchBody = 10 << 20 // 10 MiB, for submit_memories and delete_memories
)

// Options are the dependencies and settings of the API.
type Options struct {
	Registry *mcp.Registry
	Verifier auth.Verifier
	// IssuerURL is the public base URL (config IssuerURL, no trailing
	// slash); the OpenAPI document's server.
	IssuerURL string
	// ResourceMetadataURL is named in WWW-Authenticate challenges
	// (oauth.ResourceMetadataURL()).
	ResourceMetadataURL string
	// AllowedOrigins are the browser Origins accepted on /mcp and /api; "*"
	// accepts any. Requests without an Origin header (non-browser clients)
	// are always accepted.
	AllowedOrigins []string
	// RateLimit is requests per second per token (burst twice that); 0
	// disables.
	RateLimit float64
	// SharedRates, when set, holds RateLimit across every instance on the
	// same database; nil limits each process on its own.
	SharedRates SharedRates
	// RequestTimeout bounds a request to /mcp or /api (0: 60 s).
	RequestTimeout time.Duration
	// Stateful selects the stateful MCP mode (sessions, subscriptions).
	Stateful bool
	// Version is reported by MCP initialize and in the OpenAPI document.
	Version string
	// Ping checks the database for /readyz; nil reports ready.
	Ping func(ctx context.Context) error
	// Gatherer serves /metrics; nil serves the default registry.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// API holds the routes.
type API struct {
	o       Options
	mcp     http.Handler
	limiter *limiter
	openapi []byte
}

// New builds the API; it fails when the OpenAPI document cannot be built,
// which only a programming error causes.
func New(o Options) (*API, error) {
	if o.Registry == nil || o.Verifier == nil {
		return nil, errors.New("httpapi: Registry and Verifier are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 60 * time.Second
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	doc, err := OpenAPI(o.Registry, o.IssuerURL, o.Version)
	if err != nil {
		return nil, err
	}
	a := &API{
		o: o,
		mcp: o.Registry.Handler(mcp.ServerOptions{
			Version: o.Version, Stateful: o.Stateful, MaxBodyBytes: MaxBatchBody,
		}),
		openapi: doc,
	}
	if o.RateLimit > 0 {
		a.limiter = newLimiter(o.RateLimit, int(2*o.RateLimit+0.5), o.SharedRates, o.Logger)
	}
	return a, nil
}

// Mount adds the routes to e. Route-level middleware only: nothing is
// installed on e globally, and errors are written here as JSON rather than
// left to e's error handler.
func (a *API) Mount(e *echo.Echo) {
	guarded := []echo.MiddlewareFunc{a.jsonErrors, a.origin, a.authenticate, a.rateLimit, a.deadline}
	mcpHandler := echo.WrapHandler(a.mcp)
	e.POST("/mcp", mcpHandler, append(guarded, a.mcpBodyLimit)...)
	e.GET("/mcp", mcpHandler, guarded...)
	e.DELETE("/mcp", mcpHandler, guarded...)
	e.OPTIONS("/mcp", a.preflight, a.jsonErrors)
	e.POST("/api/tools", a.callTool, guarded...)
	e.OPTIONS("/api/tools", a.preflight, a.jsonErrors)

	e.GET("/openapi.json", a.serveOpenAPI)
	e.GET("/docs", a.serveDocs)
	e.GET("/docs/", a.serveDocs)
	e.GET("/docs/:file", a.serveDocsAsset)

	e.GET("/healthz", func(c *echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", a.ready, a.jsonErrors)
	metrics := promhttp.HandlerFor(a.o.Gatherer, promhttp.HandlerOpts{})
	e.GET("/metrics", echo.WrapHandler(metrics))
}

// Close releases what the API holds (the rate limiter's sweeper).
func (a *API) Close() {
	if a.limiter != nil {
		a.limiter.close()
	}
}

func (a *API) ready(c *echo.Context) error {
	if a.o.Ping == nil {
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	if err := a.o.Ping(ctx); err != nil {
		a.o.Logger.Warn("readiness check failed", "error", err)
		return &httpError{status: http.StatusServiceUnavailable, body: shared.APIError{
			Code: shared.CodeUnavailable, Message: "the database is not reachable"}}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

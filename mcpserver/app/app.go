// Package app assembles mcpserver: configuration in, a running HTTP server
// out. cmd/mcpserver calls it, and end-to-end tests in other modules start
// the real server in-process through it (New with Port 0, Run, Addr,
// Close).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"picard.dev/mcpserver/internal/archive"
	"picard.dev/mcpserver/internal/backfill"
	"picard.dev/mcpserver/internal/config"
	"picard.dev/mcpserver/internal/httpapi"
	"picard.dev/mcpserver/internal/mcp"
	"picard.dev/mcpserver/internal/oauth"
	"picard.dev/mcpserver/internal/persona"
	"picard.dev/mcpserver/internal/store"
)

// Version is the version of the binary, set at build time with
// -ldflags "-X picard.dev/mcpserver/app.Version=…".
var Version = "dev"

// LoadConfig validates configuration from a lookup function (os.Getenv, or
// a map's lookup in tests).
func LoadConfig(getenv func(string) string) (*config.Config, error) { return config.Load(getenv) }

// ConfigFromEnvironment reads .env (if present) and the environment.
func ConfigFromEnvironment() (*config.Config, error) { return config.FromEnvironment() }

// App is a configured mcpserver, listening but not yet serving until Run.
type App struct {
	core     *core
	oauth    *oauth.Server
	registry *mcp.Registry
	api      *httpapi.API
	backfill *backfill.Worker
	server   *http.Server
	ln       net.Listener
}

// New opens the database (migrating it), loads the keys, builds every
// component and starts listening on the configured address.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	c, err := openCore(ctx, cfg, log, true)
	if err != nil {
		return nil, err
	}
	a := &App{core: c}
	handler, err := a.routes(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr(), err)
	}
	a.ln = ln
	a.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return a, nil
}

func (a *App) routes(ctx context.Context) (http.Handler, error) {
	c := a.core
	cfg := c.cfg
	if err := c.ensureVectorIndex(ctx); err != nil {
		return nil, err
	}
	c.warnUnindexed(ctx)
	keys, err := oauth.LoadSigningKeys(oauth.KeyOptions{
		File:       cfg.JWTPrivateKeyFile,
		DataDir:    cfg.DataDir,
		Production: cfg.Production(),
		Logger:     c.log,
	})
	if err != nil {
		return nil, err
	}
	var chat persona.Chat
	if cfg.OpenAIAPIKey != "" {
		chat, err = persona.NewOpenAIChat(persona.OpenAIConfig{
			APIKey:  cfg.OpenAIAPIKey,
			BaseURL: cfg.OpenAIBaseURL,
			Model:   cfg.ChatModel,
		})
		if err != nil {
			return nil, &config.Error{Var: "MCP_CHAT_MODEL", Msg: err.Error()}
		}
	}
	personas := persona.New(persona.Options{
		Searcher: c.memories,
		Users:    c.users,
		Settings: c.db.PersonaSettings(),
		Chat:     chat,
		Limits:   persona.Limits{MaxTemperature: cfg.PersonaMaxTemperature, MaxTokens: cfg.PersonaMaxTokens},
	})
	as, err := oauth.New(oauth.Options{
		Issuer:     cfg.IssuerURL,
		Resource:   cfg.ResourceURL(),
		Users:      c.users,
		Store:      c.db.OAuth(),
		Activity:   c.db.Activity(),
		Keys:       keys,
		Logger:     c.log,
		Production: cfg.Production(),
		Exporter:   archive.Exporter{Accounts: c.users, Memories: c.memories},
		Personas:   personas,
	})
	if err != nil {
		return nil, err
	}
	a.oauth = as

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.backfill, err = backfill.New(backfill.Options{Filler: c.memories, Registerer: reg, Logger: c.log})
	if err != nil {
		return nil, err
	}
	// Several instances can serve from one Postgres database; their rate
	// limits are kept there together. A SQLite file has one server.
	var sharedRates httpapi.SharedRates
	if c.db.Dialect() == store.DialectPostgres {
		sharedRates = c.db.RateLimits()
	}
	registry := mcp.NewRegistry(mcp.Deps{
		Memories: c.memories,
		Users:    c.users,
		Personas: personas,
		Activity: c.db.Activity(),
		Tokens:   as,
		Metrics:  mcp.NewMetrics(reg),
		Logger:   c.log,
		Timeout:  cfg.RequestTimeout,
	})
	api, err := httpapi.New(httpapi.Options{
		Registry:            registry,
		Verifier:            as,
		IssuerURL:           cfg.IssuerURL,
		ResourceMetadataURL: as.ResourceMetadataURL(),
		AllowedOrigins:      cfg.AllowedOrigins,
		RateLimit:           cfg.RateLimit,
		SharedRates:         sharedRates,
		RequestTimeout:      cfg.RequestTimeout,
		Stateful:            cfg.Stateful,
		Version:             Version,
		Ping:                c.db.Ping,
		Gatherer:            reg,
		Logger:              c.log,
	})
	if err != nil {
		return nil, err
	}
	a.registry, a.api = registry, api

	e := echo.New()
	as.Mount(e)
	api.Mount(e)
	return e, nil
}

// Addr is the address the server listens on (useful with port 0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// URL is the base URL of the listener, for tests.
func (a *App) URL() string { return "http://" + a.Addr() }

// Run serves until ctx is done, then shuts down gracefully: the listener
// closes at once (new connections are refused), in-flight requests get up
// to 15 seconds to finish, and the background work (pruning, the
// embedding worker) stops before Run returns, so Close can follow.
func (a *App) Run(ctx context.Context) error {
	log := a.core.log
	log.Info("mcpserver listening", "addr", a.Addr(), "issuer", a.core.cfg.IssuerURL,
		"database", a.core.db.Dialect(), "embedder", a.core.embedder.Name(), "version", Version)
	errc := make(chan error, 1)
	go func() { errc <- a.server.Serve(a.ln) }()
	// The authorization server prunes expired codes, tokens and sessions,
	// and the embedding worker fills in vectors missed while the provider
	// was down, for as long as the server runs.
	bg, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	background.Go(func() { _ = a.oauth.Run(bg) })
	background.Go(func() { _ = a.backfill.Run(bg) })
	defer func() {
		stopBackground()
		background.Wait()
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("mcpserver shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := a.server.Shutdown(sctx)
	if err != nil {
		// Requests still running after the grace period are cut off
		// rather than left to meet a closed database.
		log.Warn("in-flight requests did not finish in time; closing their connections", "grace", shutdownGrace)
		err = errors.Join(err, a.server.Close())
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// shutdownGrace is how long in-flight requests may take after a shutdown
// begins.
const shutdownGrace = 15 * time.Second

// Close flushes the activity log and releases the database. Call it after
// Run returns.
func (a *App) Close() error {
	_ = a.ln.Close()
	a.api.Close()
	a.registry.Close()
	return a.core.Close()
}

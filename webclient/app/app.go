// Package app assembles the web client from its configuration: database,
// accounts, OAuth client, MCP client and HTTP handlers. It is exported so
// that end-to-end tests in other modules can run the real web client
// in-process (port 0 is allowed; Addr reports the port chosen).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"picard.dev/webclient/internal/account"
	"picard.dev/webclient/internal/config"
	"picard.dev/webclient/internal/contacts"
	"picard.dev/webclient/internal/memoryclient"
	"picard.dev/webclient/internal/oauthclient"
	"picard.dev/webclient/internal/store"
	"picard.dev/webclient/internal/web"
)

// Version is the build's version, set with -ldflags "-X picard.dev/webclient/app.Version=…".
var Version = "dev"

// Config is the web client's configuration; see LoadConfig and ConfigFromMap.
type Config = config.Config

// LoadConfig reads the configuration from the environment (and a .env file).
func LoadConfig() (Config, error) { return config.FromEnv() }

// ConfigFromMap builds the configuration from variables given in code, with
// the same defaults and validation as the environment.
func ConfigFromMap(vars map[string]string) (Config, error) { return config.FromMap(vars) }

// App is a configured web client.
type App struct {
	cfg    Config
	logger *slog.Logger
	db     *store.DB
	oauth  *oauthclient.Client
	acct   *account.Service
	ln     net.Listener
	srv    *http.Server
}

// OpenDB opens the configured database without migrating it.
func OpenDB(ctx context.Context, cfg Config) (*store.DB, error) {
	dsn := ""
	if cfg.UsesPostgres() {
		dsn = cfg.DatabaseURL
	}
	return store.Open(ctx, dsn, cfg.SQLitePath())
}

// Migrate applies the database migrations and returns.
func Migrate(ctx context.Context, cfg Config) error {
	db, err := OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Migrate(ctx)
}

// New opens and migrates the database, builds the handlers and starts
// listening (so Addr is known), but serves nothing until Run.
func New(cfg Config, logger *slog.Logger) (*App, error) { return NewWithListener(cfg, logger, nil) }

// NewWithListener is New serving on ln instead of listening on the
// configured address. Tests open ln first so that WEBCLIENT_BASE_URL can
// name the port the OS chose; the App closes ln.
func NewWithListener(cfg Config, logger *slog.Logger, ln net.Listener) (*App, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SecretGenerated {
		logger.Warn("WEBCLIENT_SECRET_KEY is not set; using a generated development secret", "file", cfg.DataDir+"/"+config.SecretFileName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := OpenDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Migrating at start keeps `make run` a single step; migrations are
	// idempotent and goose serialises concurrent runs on Postgres.
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	a := &App{cfg: cfg, logger: logger, db: db}
	a.acct = account.New(db.Gorm, cfg.SecretKey)
	a.oauth = oauthclient.New(db.Gorm, oauthclient.Options{
		InternalURL:  cfg.MCPServerInternalURL,
		PublicURL:    cfg.MCPServerURL,
		Resource:     cfg.MCPResource(),
		RedirectURI:  cfg.OAuthRedirectURI,
		Scopes:       cfg.OAuthScopes,
		ClientID:     cfg.OAuthClientID,
		ClientSecret: cfg.OAuthClientSecret,
		Secret:       cfg.SecretKey,
		Logger:       logger.With("component", "oauthclient"),
	})
	mc := memoryclient.New(cfg.MCPEndpoint(), memoryclient.Options{Logger: logger.With("component", "memoryclient"), Version: Version})
	handler, err := web.New(web.Deps{
		Accounts:     a.acct,
		OAuth:        a.oauth,
		Memories:     mc,
		Logger:       logger.With("component", "web"),
		BaseURL:      cfg.BaseURL,
		MCPServerURL: cfg.MCPServerURL,
		Ready:        db.Ping,
		Contacts:     contacts.New(db.Gorm),
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Addr()); err != nil {
			db.Close()
			return nil, fmt.Errorf("listening on %s: %w", cfg.Addr(), err)
		}
	}
	a.ln = ln
	a.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		// Exports stream for as long as they need; the MCP calls behind
		// each page have their own timeouts.
		IdleTimeout: 120 * time.Second,
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return a, nil
}

// Addr is the address the web client listens on.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Run serves until ctx is cancelled, then shuts down gracefully.
func (a *App) Run(ctx context.Context) error {
	a.logger.Info("web client listening", "addr", a.Addr(), "base_url", a.cfg.BaseURL, "mcp_server", a.cfg.MCPServerURL, "version", Version)
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go a.prepareOAuth(bg)
	go a.purgeSessions(bg)

	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

// prepareOAuth registers with the MCP server at start, retrying while it
// is not up yet (compose starts both together); pages retry on demand too.
func (a *App) prepareOAuth(ctx context.Context) {
	delay := time.Second
	for {
		attempt, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := a.oauth.Prepare(attempt)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		a.logger.Warn("MCP server not ready for OAuth yet; retrying", "error", err, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Minute)
	}
}

func (a *App) purgeSessions(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := a.acct.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
			a.logger.Warn("purging expired sessions", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close releases the listener and the database.
func (a *App) Close() error {
	err := a.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return errors.Join(err, a.db.Close())
}

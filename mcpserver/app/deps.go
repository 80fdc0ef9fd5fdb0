package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"picard.dev/mcpserver/internal/config"
	"picard.dev/mcpserver/internal/crypt"
	"picard.dev/mcpserver/internal/embed"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/store"
	"picard.dev/mcpserver/internal/user"
)

// core is what every command needs: the database with its keys, the
// embedder, and the domain services over them.
type core struct {
	cfg      *config.Config
	log      *slog.Logger
	db       *store.DB
	keyring  *crypt.Keyring
	embedder embedder
	users    *user.Service
	memories *memory.Service
}

// embedder is what the app needs of an embedder: the domain's interface
// plus the dimension, for the vector index.
type embedder interface {
	memory.Embedder
	Dim() int
}

// openCore opens the database and builds the services. migrate applies
// pending migrations first; otherwise an outdated schema is refused.
func openCore(ctx context.Context, cfg *config.Config, log *slog.Logger, migrate bool) (*core, error) {
	keyring, err := loadKeyring(cfg, log)
	if err != nil {
		return nil, err
	}
	emb, err := newEmbedder(cfg)
	if err != nil {
		return nil, err
	}
	indexKey, err := loadIndexKey(cfg, log)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, store.Options{
		URL:        cfg.DatabaseURL,
		SQLitePath: cfg.SQLitePath(),
		Sealer:     keyring,
		Logger:     log,
		IndexKey:   indexKey,
	})
	if err != nil {
		return nil, err
	}
	if migrate {
		err = db.Migrate(ctx)
	} else {
		err = db.CheckSchema(ctx)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	users := user.NewService(db.Users(), nil)
	return &core{
		cfg:      cfg,
		log:      log,
		db:       db,
		keyring:  keyring,
		embedder: emb,
		users:    users,
		memories: memory.NewService(db.Memories(), emb, users, nil),
	}, nil
}

func (c *core) Close() error { return c.db.Close() }

// loadKeyring parses MCP_ENCRYPTION_KEYS, or in development loads (and on
// first start generates) keys under the data directory, loudly.
func loadKeyring(cfg *config.Config, log *slog.Logger) (*crypt.Keyring, error) {
	keys := cfg.EncryptionKeys
	if keys == "" {
		if cfg.Production() {
			return nil, &config.Error{Var: "MCP_ENCRYPTION_KEYS", Msg: "is required in production"}
		}
		k, created, err := crypt.LoadOrCreateDevKeys(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		if created {
			log.Warn("generated a development encryption key; set MCP_ENCRYPTION_KEYS in production", "file", cfg.DataDir+"/"+crypt.DevKeysFile)
		} else {
			log.Warn("using the development encryption key; set MCP_ENCRYPTION_KEYS in production", "file", cfg.DataDir+"/"+crypt.DevKeysFile)
		}
		keys = k
	}
	kr, err := crypt.ParseKeys(keys)
	if err != nil {
		return nil, &config.Error{Var: "MCP_ENCRYPTION_KEYS", Msg: err.Error()}
	}
	return kr, nil
}

// loadIndexKey returns MCP_INDEX_KEY, or in development loads (and on first
// start generates) the blind index key under the data directory, loudly.
func loadIndexKey(cfg *config.Config, log *slog.Logger) ([]byte, error) {
	if cfg.IndexKey != nil {
		return cfg.IndexKey, nil
	}
	if cfg.Production() {
		return nil, &config.Error{Var: "MCP_INDEX_KEY", Msg: "is required in production"}
	}
	k, created, err := crypt.LoadOrCreateDevIndexKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	file := cfg.DataDir + "/" + crypt.DevIndexKeyFile
	if created {
		log.Warn("generated a development index key; set MCP_INDEX_KEY in production", "file", file)
	} else {
		log.Warn("using the development index key; set MCP_INDEX_KEY in production", "file", file)
	}
	return k, nil
}

func newEmbedder(cfg *config.Config) (embedder, error) {
	switch cfg.Embedder {
	case config.EmbedderHash:
		return embed.NewHash(0), nil
	case config.EmbedderOpenAI:
		o, err := embed.NewOpenAI(embed.OpenAIConfig{
			APIKey:  cfg.OpenAIAPIKey,
			BaseURL: cfg.OpenAIBaseURL,
			Model:   cfg.EmbeddingModel,
		})
		if err != nil {
			return nil, &config.Error{Var: "MCP_EMBEDDING_MODEL", Msg: err.Error()}
		}
		return o, nil
	}
	return nil, fmt.Errorf("unknown embedder %q", cfg.Embedder)
}

// ensureVectorIndex creates the vector index for the embedder's dimension.
// A remote embedder whose dimension is only known after a first call is
// probed with a short deadline; if it cannot be reached the index is
// created on the next start, and search still works, only slower.
func (c *core) ensureVectorIndex(ctx context.Context) error {
	dim := c.embedder.Dim()
	if dim == 0 {
		if p, ok := c.embedder.(interface {
			Probe(context.Context) (int, error)
		}); ok {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			d, err := p.Probe(pctx)
			cancel()
			if err != nil {
				c.log.Warn("embedding dimension unknown; vector index not created yet", "err", err)
				return nil
			}
			dim = d
		}
	}
	if dim == 0 {
		return errors.New("embedder has no dimension")
	}
	return c.db.EnsureVectorIndex(ctx, dim)
}

// warnUnindexed logs when memories are missing from the lexical index under
// the configured key (stored before the index existed, or the key changed):
// they are still found by their vectors, but not by their words until
// `mcpserver reindex` runs.
func (c *core) warnUnindexed(ctx context.Context) {
	n, err := c.db.Memories().PendingIndex(ctx)
	switch {
	case err != nil:
		c.log.Warn("cannot count memories missing from the lexical index", "err", err)
	case n > 0:
		c.log.Warn("memories are missing from the lexical index; run `mcpserver reindex`", "memories", n)
	}
}

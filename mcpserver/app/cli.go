package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"picard.dev/mcpserver/internal/config"
	"picard.dev/mcpserver/internal/crypt"
	"picard.dev/mcpserver/internal/oauth"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared/health"
)

const usage = `usage: mcpserver [command]

commands:
  serve                      run the server (the default)
  migrate                    apply database migrations and exit
  version                    print the version
  users create --email E [--name N] [--admin] --password-stdin
                             create an account; prints its id
  tokens issue --email E --scopes "memories:read memories:write" [--ttl 1h]
                             issue a personal access token; prints it
  keys generate              print a new Fernet encryption key
  keys rotate                re-encrypt every memory with the first key of MCP_ENCRYPTION_KEYS
  reembed                    compute vectors missing or made by another embedder
  reindex                    rebuild the lexical index of memories not indexed with MCP_INDEX_KEY
  export --user EMAIL | --all
                             write an archive (JSON) of one account's memories, or of every
                             account and memory, to stdout
  import [--skip-unknown-shares] FILE
                             restore an archive; safe to run again (nothing is written twice)
  healthcheck                exit 0 when the local server is ready (for container health checks)
`

// IO are the standard streams of a command.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Main runs the command line and returns the process exit code. Values a
// script asks for (ids, tokens, keys) are the only output on stdout; logs
// and progress go to stderr.
func Main(ctx context.Context, args []string, stdio IO) int {
	if err := run(ctx, args, stdio); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stdio.Stderr, "mcpserver: %v\n\n%s", err, usage)
			return 2
		}
		fmt.Fprintf(stdio.Stderr, "mcpserver: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdio IO) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintln(stdio.Stdout, Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdio.Stdout, usage)
		return nil
	case "keys":
		if len(args) > 0 && args[0] == "generate" {
			k, err := crypt.GenerateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(stdio.Stdout, k)
			return nil
		}
	}

	cfg, err := config.FromEnvironment()
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdio.Stderr)
	switch cmd {
	case "serve":
		return serve(ctx, cfg, log, args)
	case "migrate":
		c, err := openCore(ctx, cfg, log, true)
		if err != nil {
			return err
		}
		defer c.Close()
		log.Info("database is up to date", "database", c.db.Dialect())
		return nil
	case "users":
		return usersCommand(ctx, cfg, log, args, stdio)
	case "tokens":
		return tokensCommand(ctx, cfg, log, args, stdio)
	case "keys":
		return keysCommand(ctx, cfg, log, args, stdio)
	case "reembed":
		return reembed(ctx, cfg, log, args, stdio)
	case "reindex":
		return reindex(ctx, cfg, log, args, stdio)
	case "export":
		return exportCommand(ctx, cfg, log, args, stdio)
	case "import":
		return importCommand(ctx, cfg, log, args, stdio)
	case "healthcheck":
		return healthcheck(ctx, cfg, stdio)
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments (got %q)", strings.Join(args, " "))}
	}
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}

// parseFlags parses a subcommand's flags, reporting errors as usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func usersCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, args []string, stdio IO) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError{"users: want users create"}
	}
	fs := flag.NewFlagSet("users create", flag.ContinueOnError)
	email := fs.String("email", "", "email address")
	name := fs.String("name", "", "display name")
	admin := fs.Bool("admin", false, "make the account an administrator")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *email == "" {
		return usageError{"users create: --email is required"}
	}
	if !*pwStdin {
		return usageError{"users create: --password-stdin is required (passwords never go on the command line)"}
	}
	pw, err := bufio.NewReader(stdio.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	pw = strings.TrimRight(pw, "\r\n")
	c, err := openCore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer c.Close()
	u, err := c.users.Register(ctx, user.Registration{Email: *email, Name: *name, Password: pw, Admin: *admin})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Stdout, u.ID)
	return nil
}

func tokensCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, args []string, stdio IO) error {
	if len(args) == 0 || args[0] != "issue" {
		return usageError{"tokens: want tokens issue"}
	}
	fs := flag.NewFlagSet("tokens issue", flag.ContinueOnError)
	email := fs.String("email", "", "the account's email")
	scopes := fs.String("scopes", "", "space-separated scopes")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *email == "" || strings.TrimSpace(*scopes) == "" {
		return usageError{"tokens issue: --email and --scopes are required"}
	}
	if *ttl <= 0 {
		return usageError{"tokens issue: --ttl must be positive"}
	}
	c, err := openCore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer c.Close()
	u, err := c.users.ByEmail(ctx, *email)
	if err != nil {
		return fmt.Errorf("tokens issue: %s: %w", *email, err)
	}
	keys, err := oauth.LoadSigningKeys(oauth.KeyOptions{File: cfg.JWTPrivateKeyFile, DataDir: cfg.DataDir, Production: cfg.Production(), Logger: log})
	if err != nil {
		return err
	}
	as, err := oauth.New(oauth.Options{
		Issuer: cfg.IssuerURL, Resource: cfg.ResourceURL(), Users: c.users, Store: c.db.OAuth(),
		Activity: c.db.Activity(), Keys: keys, Logger: log, Production: cfg.Production(),
	})
	if err != nil {
		return err
	}
	tok, err := as.IssuePersonalToken(ctx, u.ID, strings.Fields(*scopes), *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Stdout, tok)
	return nil
}

func keysCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, args []string, stdio IO) error {
	if len(args) == 0 || args[0] != "rotate" {
		return usageError{"keys: want keys generate or keys rotate"}
	}
	return runBatchJob(ctx, cfg, log, args[1:], stdio, batchJob{
		name: "keys rotate", batch: 500, batchHelp: "memories re-encrypted per transaction", progress: "re-encrypting memories",
		run: func(ctx context.Context, c *core, batch int, report func(done, total int)) error {
			if err := c.db.Memories().RotateKeys(ctx, batch, report); err != nil {
				return err
			}
			log.Info("every memory is sealed with the first key; older keys can be removed from MCP_ENCRYPTION_KEYS", "key_id", c.keyring.PrimaryID())
			return nil
		},
	})
}

func reembed(ctx context.Context, cfg *config.Config, log *slog.Logger, args []string, stdio IO) error {
	return runBatchJob(ctx, cfg, log, args, stdio, batchJob{
		name: "reembed", batch: 256, batchHelp: "memories embedded per request and transaction", progress: "embedding memories",
		run: func(ctx context.Context, c *core, batch int, report func(done, total int)) error {
			if err := c.ensureVectorIndex(ctx); err != nil {
				return err
			}
			if err := c.db.Memories().Reembed(ctx, c.embedder, batch, report); err != nil {
				return err
			}
			log.Info("every memory has a vector from the configured embedder", "embedder", c.embedder.Name())
			return nil
		},
	})
}

// reindex rebuilds the lexical blind index where it was not made with the
// configured index key: after MCP_INDEX_KEY changed, or for memories stored
// before the index existed.
func reindex(ctx context.Context, cfg *config.Config, log *slog.Logger, args []string, stdio IO) error {
	return runBatchJob(ctx, cfg, log, args, stdio, batchJob{
		name: "reindex", batch: 500, batchHelp: "memories indexed per transaction", progress: "indexing memories",
		run: func(ctx context.Context, c *core, batch int, report func(done, total int)) error {
			if err := c.db.Memories().Reindex(ctx, batch, report); err != nil {
				return err
			}
			log.Info("every memory is in the lexical index under the configured index key")
			return nil
		},
	})
}

// batchJob is a maintenance command over every memory that works in
// batches of one transaction each, so it can be interrupted and run again
// without losing or repeating anything.
type batchJob struct {
	name      string // the command, for flags and errors
	batch     int    // default of --batch
	batchHelp string
	progress  string // what the progress report says is being done
	run       func(ctx context.Context, c *core, batch int, report func(done, total int)) error
}

func runBatchJob(ctx context.Context, cfg *config.Config, log *slog.Logger, args []string, stdio IO, j batchJob) error {
	fs := flag.NewFlagSet(j.name, flag.ContinueOnError)
	batch := fs.Int("batch", j.batch, j.batchHelp)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *batch <= 0 {
		return usageError{j.name + ": --batch must be positive"}
	}
	c, err := openCore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer c.Close()
	p := newProgress(j.progress, stdio.Stderr, log)
	if err := j.run(ctx, c, *batch, p.Report); err != nil {
		return fmt.Errorf("%s (safe to run again): %w", j.name, err)
	}
	return nil
}

// healthcheck asks the local server's /readyz; container images have no
// shell or curl, so health checks run the binary itself.
func healthcheck(ctx context.Context, cfg *config.Config, stdio IO) error {
	if err := health.Check(ctx, cfg.Host, cfg.Port, "/readyz"); err != nil {
		return err
	}
	fmt.Fprintln(stdio.Stdout, "ready")
	return nil
}

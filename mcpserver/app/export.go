package app

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"picard.dev/mcpserver/internal/archive"
	"picard.dev/mcpserver/internal/config"
)

// exportCommand writes an archive to stdout: one account's memories
// (--user) or every account and memory (--all, the administrator's backup,
// which holds password hashes).
func exportCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, args []string, stdio IO) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	email := fs.String("user", "", "the account whose memories to export")
	all := fs.Bool("all", false, "export every account (with password hashes) and every memory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*email == "") == !*all {
		return usageError{"export: give either --user EMAIL or --all"}
	}
	c, err := openCore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer c.Close()
	x := archive.Exporter{Accounts: c.users, Memories: c.memories}
	out := bufio.NewWriterSize(stdio.Stdout, 1<<16)
	p := newProgress("exporting memories", stdio.Stderr, log)
	if *all {
		err = x.ExportAll(ctx, out, p.Report)
	} else {
		u, uerr := c.users.ByEmail(ctx, *email)
		if uerr != nil {
			return fmt.Errorf("export: %s: %w", *email, uerr)
		}
		err = x.ExportUser(ctx, u.ID, out, p.Report)
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if *all {
		log.Warn("the archive holds every memory's text in clear and every password hash; keep it as safe as the database and its keys together")
	}
	return nil
}

// importCommand restores an archive written by export. It validates the
// whole file and plans the import before writing anything; then it can be
// interrupted and run again without losing or duplicating anything.
func importCommand(ctx context.Context, cfg *config.Config, log *slog.Logger, args []string, stdio IO) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	skipShares := fs.Bool("skip-unknown-shares", false, "drop shares with emails no account has, instead of refusing the archive")
	batch := fs.Int("batch", 500, "memories written per transaction")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("import: %v", err)}
	}
	if fs.NArg() != 1 {
		return usageError{"import: want one archive file (or - for standard input), after the flags"}
	}
	if *batch <= 0 {
		return usageError{"import: --batch must be positive"}
	}
	var in io.Reader = stdio.Stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name) // #nosec G304 -- the operator names the file to import
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		in = f
	}
	a, err := archive.Read(bufio.NewReaderSize(in, 1<<16))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	c, err := openCore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer c.Close()
	im := archive.Importer{Accounts: c.users, Memories: c.memories, SkipUnknownShares: *skipShares, Batch: *batch, Logger: log}
	p := newProgress("importing memories", stdio.Stderr, log)
	st, err := im.Import(ctx, a, p.Report)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	log.Info("import finished", "accounts_created", st.AccountsCreated, "accounts_existing", st.AccountsExisting,
		"memories_written", st.MemoriesWritten, "memories_already_present", st.MemoriesSkipped, "shares_dropped", st.SharesDropped)
	return nil
}

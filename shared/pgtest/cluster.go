package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// debianBinDir is where Debian's postgresql-15 package (and
// scripts/install-pgvector.sh) puts the server binaries.
const debianBinDir = "/usr/lib/postgresql/15/bin"

// startTimeout bounds initdb, pg_ctl start and the wait for connections.
const startTimeout = 2 * time.Minute

// cluster is a private PostgreSQL cluster in a temporary directory.
type cluster struct {
	dir    string // holds data/, the log and the Unix socket
	binDir string
	port   int
	env    []string

	// runAs is the OS user the server runs as when the test binary is root
	// (initdb and postgres refuse root); nil means the current user.
	runAs   *user.User
	runuser string // path of runuser, or "" to use su

	// durable keeps synchronous_commit on, so that a commit the server
	// acknowledged survives the server being stopped or killed (fault
	// tests); fsync stays off, since the machine itself does not crash.
	durable bool

	// watchdog stops the cluster and removes dir when the test binary dies
	// without calling stop: it waits for EOF on a pipe whose write end,
	// alive, only this process holds.
	watchdog     *exec.Cmd
	watchdogPipe *os.File
}

// startCluster finds PostgreSQL and starts a private cluster with pgvector.
func startCluster() (*server, error) { return startClusterWith(false) }

// startClusterWith is startCluster, with synchronous_commit on if durable.
func startClusterWith(durable bool) (*server, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	if err := checkVectorInstalled(binDir); err != nil {
		return nil, err
	}
	c := &cluster{binDir: binDir, env: cleanEnv(), durable: durable}
	if os.Geteuid() == 0 {
		if c.runAs, err = user.Lookup("postgres"); err != nil {
			return nil, unavailable("running as root, and there is no postgres user to run initdb as (scripts/install-pgvector.sh creates it)")
		}
		if c.runuser, err = exec.LookPath("runuser"); err != nil {
			c.runuser = ""
			if _, err := exec.LookPath("su"); err != nil {
				return nil, unavailable("running as root, and neither runuser nor su is there to run initdb as the postgres user")
			}
		}
	}
	if err := c.makeDir(); err != nil {
		return nil, err
	}
	if err := c.startWatchdog(); err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	srv, err := c.start()
	if err != nil {
		if stopErr := c.stop(); stopErr != nil {
			err = fmt.Errorf("%w\n%v", err, stopErr)
		}
		return nil, err
	}
	return srv, nil
}

// findBinDir returns the directory of initdb, pg_ctl, pg_isready and psql.
func findBinDir() (string, error) {
	candidates := []string{debianBinDir}
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil { // #nosec G204 -- pg_config found on PATH, as the docs say
			candidates = append(candidates, strings.TrimSpace(string(out)))
		}
	}
	for _, dir := range candidates {
		if hasTools(dir) {
			return dir, nil
		}
	}
	return "", unavailable("PostgreSQL is not installed (no initdb, pg_ctl, pg_isready and psql in %s or in pg_config --bindir); run scripts/install-pgvector.sh", debianBinDir)
}

func hasTools(dir string) bool {
	for _, tool := range []string{"initdb", "pg_ctl", "pg_isready", "psql", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, tool)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// checkVectorInstalled looks for pgvector's control file before a cluster is
// started for nothing. Without a pg_config beside the binaries the check is
// left to the SQL query after start.
func checkVectorInstalled(binDir string) error {
	out, err := exec.Command(filepath.Join(binDir, "pg_config"), "--sharedir").Output() // #nosec G204 -- the PostgreSQL installation located above
	if err != nil {
		return nil
	}
	control := filepath.Join(strings.TrimSpace(string(out)), "extension", "vector.control")
	if _, err := os.Stat(control); err != nil {
		return unavailable("pgvector is not installed for the PostgreSQL in %s (no %s); run scripts/install-pgvector.sh", binDir, control)
	}
	return nil
}

// findPsql returns a psql for an external server.
func findPsql() (string, error) {
	if path, err := exec.LookPath("psql"); err == nil {
		return path, nil
	}
	if dir, err := findBinDir(); err == nil {
		return filepath.Join(dir, "psql"), nil
	}
	return "", unavailable("%s is set but psql is not installed; run scripts/install-pgvector.sh", EnvURL)
}

// cleanEnv is the environment without libpq's PG* variables, so that a
// developer's PGHOST or PGDATABASE cannot redirect the private cluster's tools.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "PGCONNECT_TIMEOUT=10")
}

// makeDir creates the cluster's directory, owned by the user the server runs
// as. As root it falls back to /tmp when that user cannot write under
// $TMPDIR (a private TMPDIR of root's, for instance).
func (c *cluster) makeDir() error {
	bases := []string{os.TempDir()}
	if c.runAs != nil && os.TempDir() != "/tmp" {
		bases = append(bases, "/tmp")
	}
	var errs []error
	for _, base := range bases {
		dir, err := os.MkdirTemp(base, "pgtest-")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.dir = dir
		if c.runAs == nil {
			return nil
		}
		if err := c.chown(); err != nil {
			os.RemoveAll(dir)
			errs = append(errs, err)
			continue
		}
		if out, err := c.command(context.Background(), "/usr/bin/env", "test", "-w", dir, "-a", "-x", dir).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			errs = append(errs, fmt.Errorf("user %s cannot write %s: %v %s", c.runAs.Username, dir, err, out))
			continue
		}
		return nil
	}
	return fmt.Errorf("pgtest: create the cluster directory: %w", errors.Join(errs...))
}

func (c *cluster) chown() error {
	uid, err := strconv.Atoi(c.runAs.Uid)
	if err != nil {
		return fmt.Errorf("uid of %s: %w", c.runAs.Username, err)
	}
	gid, err := strconv.Atoi(c.runAs.Gid)
	if err != nil {
		return fmt.Errorf("gid of %s: %w", c.runAs.Username, err)
	}
	return os.Chown(c.dir, uid, gid)
}

// command returns a command that runs program as the cluster's user, in the
// cluster's directory. program is a path, or a name in the binaries' directory.
func (c *cluster) command(ctx context.Context, program string, args ...string) *exec.Cmd {
	if !filepath.IsAbs(program) {
		program = filepath.Join(c.binDir, program)
	}
	argv := append([]string{program}, args...)
	switch {
	case c.runAs == nil:
	case c.runuser != "":
		argv = append([]string{c.runuser, "-u", c.runAs.Username, "--"}, argv...)
	default:
		argv = []string{"su", "-s", "/bin/sh", "-c", shellJoin(argv), c.runAs.Username}
	}
	cmd := commandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	return cmd
}

// commandContext is exec.CommandContext that does not wait forever for
// output pipes held open by a process left behind.
func commandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...) // #nosec G204 G702 -- test helper running the PostgreSQL tools it located itself
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (c *cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *cluster) logFile() string { return filepath.Join(c.dir, "postgres.log") }

// startWatchdog starts the process that cleans up after a test binary that
// dies without calling stop. It runs in its own process group, so a Ctrl-C
// aimed at `go test` does not kill it before it has done its job.
func (c *cluster) startWatchdog() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pgtest: watchdog pipe: %w", err)
	}
	defer r.Close()
	stopCmd := c.command(context.Background(), "pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "stop")
	script := "read -r _; " + shellJoin(stopCmd.Args) + " >/dev/null 2>&1; rm -rf " + shellQuote(c.dir)
	cmd := exec.Command("/bin/sh", "-c", script) // #nosec G204 -- test helper; the script is built here from the cluster's own paths
	cmd.Stdin = r
	cmd.Dir = "/"
	cmd.Env = c.env
	cmd.SysProcAttr = newProcessGroup()
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("pgtest: start watchdog: %w", err)
	}
	c.watchdog, c.watchdogPipe = cmd, w
	return nil
}

// start runs initdb and starts the server on a free port, trying another
// port when a concurrent process took the chosen one first.
func (c *cluster) start() (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	initdb := c.command(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb failed: %v\n%s", err, strings.TrimSpace(string(out)))
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("pgtest: find a free port: %w", err)
		}
		c.port = port
		err = c.pgCtlStart(ctx)
		if err == nil {
			break
		}
		if attempt == attempts || !c.portTaken() {
			return nil, err
		}
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}

	admin := &url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	srv := &server{admin: admin, psqlPath: filepath.Join(c.binDir, "psql"), env: c.env, cluster: c}
	version, err := srv.psql(ctx, admin, "SHOW server_version")
	if err != nil {
		return nil, fmt.Errorf("pgtest: query the new cluster: %w\n%s", err, c.logTail())
	}
	vector, err := srv.psql(ctx, admin, "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
	if err != nil {
		return nil, fmt.Errorf("pgtest: query the new cluster: %w", err)
	}
	if vector == "" {
		return nil, unavailable("pgvector is not installed for the PostgreSQL in %s; run scripts/install-pgvector.sh", c.binDir)
	}
	srv.describe = fmt.Sprintf("PostgreSQL %s with pgvector %s at 127.0.0.1:%d (%s)", version, vector, c.port, c.dir)
	return srv, nil
}

// pgCtlStart starts the server, waiting until it is ready.
func (c *cluster) pgCtlStart(ctx context.Context) error {
	syncCommit := "off"
	if c.durable {
		syncCommit = "on"
	}
	opts := strings.Join([]string{
		"-p", strconv.Itoa(c.port),
		"-k", shellQuote(c.dir), // pg_ctl hands the options to a shell
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=" + syncCommit,
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=32MB",
		"-c", "max_connections=200",
	}, " ")
	// Start from an empty log so that the message shows this attempt only.
	os.Remove(c.logFile())
	cmd := c.command(ctx, "pg_ctl", "-D", c.dataDir(), "-l", c.logFile(), "-w", "-t", "60", "-o", opts, "start")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: pg_ctl start failed: %v\n%s\n%s", err, strings.TrimSpace(string(out)), c.logTail())
	}
	return nil
}

// portTaken reports whether the last start failed because another process
// bound the port between freePort and the server's own bind.
func (c *cluster) portTaken() bool {
	log, _ := os.ReadFile(c.logFile())
	return strings.Contains(string(log), "Address already in use")
}

// waitReady polls pg_isready until the server accepts connections.
func (c *cluster) waitReady(ctx context.Context) error {
	for {
		cmd := commandContext(ctx, filepath.Join(c.binDir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres", "-d", "postgres")
		cmd.Env = c.env
		if cmd.Run() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: the server on port %d did not accept connections: %w\n%s", c.port, ctx.Err(), c.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail returns the end of the server log, for failure messages.
func (c *cluster) logTail() string {
	const maxLines = 40
	data, err := os.ReadFile(c.logFile())
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return "server log " + c.logFile() + ":\n" + strings.Join(lines, "\n")
}

// stop stops the server (if it runs), removes the directory and lets the
// watchdog go.
func (c *cluster) stop() error {
	var errs []error
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		out, err := c.command(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "stop").CombinedOutput()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, strings.TrimSpace(string(out))))
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: remove the cluster directory: %w", err))
	}
	if c.watchdog != nil {
		c.watchdogPipe.Close()
		c.watchdog.Wait()
		c.watchdog = nil
	}
	return errors.Join(errs...)
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// shellJoin quotes argv for /bin/sh.
func shellJoin(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

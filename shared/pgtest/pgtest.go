// Package pgtest gives tests a real, throwaway PostgreSQL database with the
// pgvector extension, so store tests run against the same engine as
// production instead of a mock.
//
// Use it from a package's tests:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestStore(t *testing.T) {
//		dsn := pgtest.NewDatabase(t) // postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable
//		...
//	}
//
// # The cluster
//
// The first call to [NewDatabase] or [Available] in a test binary starts a
// private cluster: initdb into a new temporary directory, then pg_ctl start
// on a free TCP port of 127.0.0.1 with trust authentication and durability
// switched off (fsync, synchronous_commit, full_page_writes), which is safe
// because the data is thrown away. The binaries come from
// /usr/lib/postgresql/15/bin, or else from `pg_config --bindir`. Because
// initdb refuses to run as root, a test binary running as root hands the
// directory to the "postgres" OS user and runs initdb and pg_ctl as that user
// (through runuser, or su where runuser is missing).
//
// Every test binary (every package under `go test ./...`) has its own cluster
// in its own directory on its own port, so packages can run in parallel.
// [Main] stops the cluster and removes its directory when the tests are done.
// Should the binary die first (a panic, a -timeout, a kill), a small watchdog
// process started with the cluster notices that the binary is gone and does
// the same, so no postgres process or directory is left behind.
//
// Each [NewDatabase] call creates a new database with a unique name (from
// template0, UTF8, C collation), creates the vector extension in it, and
// drops it when the test ends. Calls may come from parallel tests.
//
// # An existing server
//
// When PICARD_TEST_POSTGRES_URL is set (a postgres:// URL whose user may
// create databases, on a server with pgvector installed), no cluster is
// started: the databases are created on that server and dropped from it, and
// the returned DSNs are that URL with the database name replaced.
//
// # Fault injection
//
// [StartCluster] gives one test a private cluster of its own that it may
// stop, kill and start again ([Cluster.Stop], [Cluster.Kill],
// [Cluster.Start]) to see how code copes with a database that goes away.
//
// # When PostgreSQL is missing
//
// If PostgreSQL 15, psql or pgvector is not installed (scripts/install-pgvector.sh
// installs them), NewDatabase skips the test with a one-line reason. With
// CI=true in the environment nothing may skip, so it fails the test with the
// same reason instead. A PostgreSQL that is installed but fails to start
// always fails the test, with the server's log in the message.
//
// The package uses only the standard library and the PostgreSQL command-line
// tools (initdb, pg_ctl, pg_isready, psql); it needs no database driver.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvURL names the environment variable that points the tests at an existing
// PostgreSQL server instead of a private cluster.
const EnvURL = "PICARD_TEST_POSTGRES_URL"

// psqlTimeout bounds every psql call, so that a hung server fails a test
// instead of stalling the whole test binary.
const psqlTimeout = 2 * time.Minute

// state is the one server of this test binary, started by the first caller.
// It is package state because a test binary has exactly one cluster, shared
// by all its tests, and Main must find it to stop it.
var state struct {
	mu      sync.Mutex
	started bool
	stopped bool
	srv     *server
	err     error
	runID   string // random, so names stay unique across binaries sharing a server
	seq     int
}

// unavailableError means PostgreSQL, psql or pgvector is not installed or not
// reachable as configured: tests skip (outside CI) rather than fail.
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return "pgtest: " + e.reason }

func unavailable(format string, args ...any) error {
	return &unavailableError{reason: fmt.Sprintf(format, args...)}
}

// Main runs the tests of m, stops the cluster if one was started, removes its
// directory, and exits with the tests' code (1 if stopping failed after the
// tests passed). Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// NewDatabase creates a fresh, uniquely named database with the vector
// extension, drops it when tb and its subtests have finished, and returns its
// DSN (postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable for the
// private cluster). It skips tb when PostgreSQL or pgvector is not available,
// or fails it when CI=true. It is safe for parallel tests.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	srv, err := get()
	if err != nil {
		report(tb, err, inCI())
		return ""
	}
	name := nextName(tb.Name())
	ctx, cancel := context.WithTimeout(context.Background(), psqlTimeout)
	defer cancel()
	create := "CREATE DATABASE " + quoteIdent(name) + " TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
	if _, err := srv.psql(ctx, srv.admin, create); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), psqlTimeout)
		defer cancel()
		// FORCE ends connections a test left open (an unclosed pool), which
		// would otherwise make the drop fail.
		if _, err := srv.psql(ctx, srv.admin, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn := srv.dsn(name)
	if _, err := srv.psql(ctx, dsn, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		tb.Fatalf("pgtest: create extension vector in %s: %v", name, err)
	}
	return dsn.String()
}

// Available starts the private cluster if needed (or checks the server named
// by PICARD_TEST_POSTGRES_URL) and reports whether databases with pgvector
// can be created. The string describes the server when it is available and
// says why not otherwise. It is for callers that decide for themselves, such
// as benchmarks; tests should simply call NewDatabase.
func Available() (bool, string) {
	srv, err := get()
	if err != nil {
		return false, err.Error()
	}
	return true, srv.describe
}

// report ends tb because the server is not there: a skip when it is simply
// not installed and we are not in CI, a failure otherwise.
func report(tb testing.TB, err error, ci bool) {
	tb.Helper()
	var u *unavailableError
	switch {
	case !errors.As(err, &u):
		tb.Fatal(err.Error())
	case ci:
		tb.Fatal(err.Error() + " (CI=true: failing instead of skipping)")
	default:
		tb.Skip(err.Error())
	}
}

// inCI reports whether the environment says this is a CI run, where no test
// may skip.
func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// get returns the server, starting it on the first call.
func get() (*server, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.stopped {
		return nil, errors.New("pgtest: the cluster was already stopped by pgtest.Main")
	}
	if !state.started {
		state.started = true
		state.srv, state.err = open()
	}
	return state.srv, state.err
}

// stop stops the private cluster, if one was started, and removes its
// directory. Databases on an external server were dropped by their tests.
func stop() error {
	state.mu.Lock()
	defer state.mu.Unlock()
	state.stopped = true
	if state.srv == nil || state.srv.cluster == nil {
		return nil
	}
	return state.srv.cluster.stop()
}

// open connects to the server named by PICARD_TEST_POSTGRES_URL or starts a
// private cluster.
func open() (*server, error) {
	if raw := os.Getenv(EnvURL); raw != "" {
		return openExternal(raw)
	}
	return startCluster()
}

// nextName returns a new database name: unique within the binary (a
// sequence number) and across binaries and machines sharing a server (a
// random run id), with the test's name for whoever lists the databases.
func nextName(testName string) string {
	state.mu.Lock()
	if state.runID == "" {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			// crypto/rand does not fail on supported platforms; the pid
			// still separates concurrent binaries on one machine.
			b = []byte(strconv.Itoa(os.Getpid()))
		}
		state.runID = hex.EncodeToString(b)
	}
	state.seq++
	prefix := fmt.Sprintf("pgtest_%s_%d_", state.runID, state.seq)
	state.mu.Unlock()
	return databaseName(prefix, testName)
}

// databaseName appends a lower-case, identifier-safe form of testName to
// prefix, keeping the result within PostgreSQL's 63-byte identifier limit.
func databaseName(prefix, testName string) string {
	const maxLen = 63
	var b strings.Builder
	b.WriteString(prefix)
	underscore := true // the prefix ends in one
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= maxLen {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			underscore = false
		} else if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	return strings.TrimRight(b.String(), "_")
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// server is where the test databases live: a private cluster or an external
// server.
type server struct {
	admin    *url.URL // where CREATE and DROP DATABASE are sent
	psqlPath string
	env      []string // environment of psql
	cluster  *cluster // nil for an external server
	describe string   // for Available
}

// dsn returns the URL of database name on the server.
func (s *server) dsn(name string) *url.URL {
	u := *s.admin
	u.Path = "/" + name
	u.RawPath = ""
	return &u
}

// psql runs one SQL command against the database at dsn and returns its
// unaligned, tuples-only output with the trailing newline removed.
func (s *server) psql(ctx context.Context, dsn *url.URL, sql string) (string, error) {
	cmd := commandContext(ctx, s.psqlPath, "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn.String(), "-c", sql)
	cmd.Env = s.env
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("psql on %s: %s", dsn.Redacted(), msg)
	}
	return strings.TrimRight(stdout.String(), "\n"), nil
}

// openExternal checks the server named by PICARD_TEST_POSTGRES_URL.
func openExternal(raw string) (*server, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return nil, fmt.Errorf("pgtest: %s must be a postgres://user@host:port/db URL", EnvURL)
	}
	psql, err := findPsql()
	if err != nil {
		return nil, err
	}
	s := &server{admin: u, psqlPath: psql, env: append(os.Environ(), "PGCONNECT_TIMEOUT=10")}
	ctx, cancel := context.WithTimeout(context.Background(), psqlTimeout)
	defer cancel()
	version, err := s.psql(ctx, u, "SHOW server_version")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %s is set but the server does not answer: %w", EnvURL, err)
	}
	vector, err := s.psql(ctx, u, "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if vector == "" {
		return nil, unavailable("pgvector is not installed on the server at %s (%s)", u.Redacted(), EnvURL)
	}
	s.describe = fmt.Sprintf("PostgreSQL %s with pgvector %s at %s", version, vector, u.Redacted())
	return s, nil
}

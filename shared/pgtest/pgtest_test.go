package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// childEnv marks a copy of this test binary started by a test below.
const childEnv = "PGTEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "crash" {
		crashWithCluster()
	}
	Main(m)
}

// crashWithCluster starts the cluster, prints where it is, and exits without
// stopping it, as a test binary killed by -timeout would.
func crashWithCluster() {
	srv, err := get()
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	fmt.Printf("cluster %s %d\n", srv.cluster.dir, srv.cluster.port)
	os.Exit(3)
}

// query runs sql in the database at dsn.
func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	srv, err := get()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := srv.psql(ctx, u, sql)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNewDatabase(t *testing.T) {
	a := NewDatabase(t)
	b := NewDatabase(t)
	_, desc := Available()
	t.Log(desc)
	if a == b {
		t.Fatalf("two calls returned the same DSN %s", a)
	}
	for _, dsn := range []string{a, b} {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("DSN %q: %v", dsn, err)
		}
		if os.Getenv(EnvURL) == "" {
			if u.User.Username() != "postgres" || !strings.HasPrefix(u.Host, "127.0.0.1:") || u.Query().Get("sslmode") != "disable" {
				t.Errorf("DSN %s, want postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable", dsn)
			}
		}
		name := strings.TrimPrefix(u.Path, "/")
		if got := query(t, dsn, "SELECT current_database()"); got != name {
			t.Errorf("current_database() = %q, want %q", got, name)
		}
		if got := query(t, dsn, "SELECT extname FROM pg_extension WHERE extname = 'vector'"); got != "vector" {
			t.Errorf("extension vector missing in %s (got %q)", name, got)
		}
		if got := query(t, dsn, "SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector"); got != "2" {
			t.Errorf("L2 distance = %q, want 2", got)
		}
	}
	query(t, a, "CREATE TABLE only_in_a (embedding vector(3))")
	if got := query(t, b, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"); got != "0" {
		t.Errorf("a table created in one database is visible in the other")
	}
}

func TestNewDatabaseParallel(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := range 6 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			dsn := NewDatabase(t)
			mu.Lock()
			dup := seen[dsn]
			seen[dsn] = true
			mu.Unlock()
			if dup {
				t.Fatalf("DSN %s handed out twice", dsn)
			}
			query(t, dsn, "CREATE TABLE items (id int PRIMARY KEY, embedding vector(2)); INSERT INTO items VALUES (1, '[0,1]'), (2, '[1,0]')")
			if got := query(t, dsn, "SELECT id FROM items ORDER BY embedding <-> '[0.9,0.1]' LIMIT 1"); got != "2" {
				t.Errorf("nearest item = %q, want 2", got)
			}
		})
	}
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	keep := NewDatabase(t)
	var gone string
	var idle *exec.Cmd
	t.Cleanup(func() {
		if idle != nil {
			idle.Process.Kill()
			idle.Wait()
		}
	})
	t.Run("sub", func(t *testing.T) {
		dsn := NewDatabase(t)
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		gone = path.Base(u.Path)
		// A connection the test forgot to close must not block the drop.
		idle = exec.Command(mustServer(t).psqlPath, "-X", "-w", "-d", dsn, "-c", "SELECT pg_sleep(60)")
		if err := idle.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			return query(t, keep, "SELECT count(*) FROM pg_stat_activity WHERE datname = '"+gone+"'") == "1"
		})
	})
	if got := query(t, keep, "SELECT count(*) FROM pg_database WHERE datname = '"+gone+"'"); got != "0" {
		t.Errorf("database %s still exists after its test ended", gone)
	}
}

func TestExternalServer(t *testing.T) {
	NewDatabase(t) // skips or fails like any other test when there is no server
	srv := mustServer(t)

	ext, err := openExternal(srv.admin.String())
	if err != nil {
		t.Fatalf("openExternal(%s): %v", srv.admin.Redacted(), err)
	}
	if !strings.Contains(ext.describe, "pgvector") {
		t.Errorf("describe = %q", ext.describe)
	}
	if got := ext.dsn("x_y").String(); !strings.HasSuffix(strings.SplitN(got, "?", 2)[0], "/x_y") {
		t.Errorf("dsn(x_y) = %s", got)
	}

	closed, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{
		"mysql://root@127.0.0.1/x",
		"postgres:///nohost",
		fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", closed),
	} {
		_, err := openExternal(raw)
		if err == nil {
			t.Errorf("openExternal(%s) succeeded", raw)
			continue
		}
		if _, ok := err.(*unavailableError); ok {
			t.Errorf("openExternal(%s) = %v, a reason to skip; a misconfigured URL must fail", raw, err)
		}
	}
}

// TestBinariesInParallel runs two copies of this test binary at once: each
// must start its own cluster on its own port and remove it at the end.
func TestBinariesInParallel(t *testing.T) {
	requireLocalPostgres(t)
	type result struct {
		out string
		err error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := childCommand("", "-test.run=^TestNewDatabase$", "-test.v", "-test.count=1").CombinedOutput()
			results[i] = result{string(out), err}
		}()
	}
	wg.Wait()
	clusterRE := regexp.MustCompile(`at 127\.0\.0\.1:(\d+) \(([^)]+)\)`)
	var ports, dirs []string
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("copy %d: %v\n%s", i, r.err, r.out)
		}
		m := clusterRE.FindStringSubmatch(r.out)
		if m == nil {
			t.Fatalf("copy %d did not log its cluster:\n%s", i, r.out)
		}
		ports, dirs = append(ports, m[1]), append(dirs, m[2])
		if _, err := os.Stat(m[2]); !os.IsNotExist(err) {
			t.Errorf("copy %d left its cluster directory %s behind (%v)", i, m[2], err)
		}
	}
	if ports[0] == ports[1] || dirs[0] == dirs[1] {
		t.Errorf("the copies shared a cluster: ports %v, directories %v", ports, dirs)
	}
}

// TestWatchdogCleansUpAfterCrash checks that a test binary that exits
// without pgtest.Main leaves no server or directory behind.
func TestWatchdogCleansUpAfterCrash(t *testing.T) {
	requireLocalPostgres(t)
	out, err := childCommand("crash").Output()
	var dir, port string
	if _, scanErr := fmt.Sscanf(string(out), "cluster %s %s", &dir, &port); scanErr != nil {
		t.Fatalf("child: %v, output %q", err, out)
	}
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 3 {
		t.Fatalf("child exited with %v, want exit status 3", err)
	}
	waitFor(t, func() bool {
		_, statErr := os.Stat(dir)
		conn, dialErr := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second)
		if dialErr == nil {
			conn.Close()
		}
		return os.IsNotExist(statErr) && dialErr != nil
	})
}

func TestReport(t *testing.T) {
	missing := unavailable("PostgreSQL is not installed")
	broken := fmt.Errorf("pgtest: initdb failed")
	tests := []struct {
		name     string
		err      error
		ci       bool
		wantSkip bool
	}{
		{"missing skips", missing, false, true},
		{"missing fails in CI", missing, true, false},
		{"broken fails", broken, false, false},
		{"broken fails in CI", broken, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &recordingTB{}
			report(tb, tt.err, tt.ci)
			if tb.skipped != tt.wantSkip || tb.failed == tt.wantSkip {
				t.Errorf("skipped=%v failed=%v, want skip=%v", tb.skipped, tb.failed, tt.wantSkip)
			}
			if !strings.Contains(tb.msg, strings.TrimPrefix(tt.err.Error(), "pgtest: ")) {
				t.Errorf("message %q does not give the reason %q", tb.msg, tt.err)
			}
		})
	}
}

func TestDatabaseName(t *testing.T) {
	tests := []struct{ prefix, test, want string }{
		{"pgtest_ab_1_", "TestStore", "pgtest_ab_1_teststore"},
		{"pgtest_ab_2_", "TestStore/Get#01 (ünicode)", "pgtest_ab_2_teststore_get_01_nicode"},
		{"pgtest_ab_3_", "Test___", "pgtest_ab_3_test"},
		{"pgtest_ab_4_", strings.Repeat("TestLong", 20), "pgtest_ab_4_" + strings.Repeat("testlong", 7)[:51]},
	}
	for _, tt := range tests {
		got := databaseName(tt.prefix, tt.test)
		if got != tt.want {
			t.Errorf("databaseName(%q, %q) = %q, want %q", tt.prefix, tt.test, got, tt.want)
		}
		if len(got) > 63 {
			t.Errorf("databaseName(%q, %q) is %d bytes, over PostgreSQL's 63", tt.prefix, tt.test, len(got))
		}
	}
}

// recordingTB records Skip and Fatal instead of ending the test.
type recordingTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recordingTB) Helper()           {}
func (r *recordingTB) Skip(args ...any)  { r.skipped, r.msg = true, fmt.Sprint(args...) }
func (r *recordingTB) Fatal(args ...any) { r.failed, r.msg = true, fmt.Sprint(args...) }

func mustServer(t *testing.T) *server {
	t.Helper()
	srv, err := get()
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// requireLocalPostgres skips (or fails in CI) unless a private cluster can be
// started here, whatever PICARD_TEST_POSTGRES_URL says.
func requireLocalPostgres(t *testing.T) {
	t.Helper()
	binDir, err := findBinDir()
	if err == nil {
		err = checkVectorInstalled(binDir)
	}
	if err != nil {
		report(t, err, inCI())
	}
}

// childCommand runs this test binary again, with a private cluster.
func childCommand(mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvURL+"=") && !strings.HasPrefix(kv, childEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, childEnv+"="+mode)
	return cmd
}

// waitFor polls cond for up to 30 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package deploy

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// configDirs are the packages that turn the environment into each binary's
// configuration; the variables they name are what the binary reads.
var configDirs = map[string]string{
	"mcpserver": "mcpserver/internal/config",
	"webclient": "webclient/internal/config",
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$`)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// repoRoot is the directory holding go.work, found upward from the test's
// working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = os.ErrNotExist
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("finding the repository root (go.work): %v", rootErr)
	}
	return rootDir
}

// varsRead returns the environment variables binary reads, taken from the
// string literals of its config package that look like variable names, so
// a variable added there cannot be forgotten here.
func varsRead(t *testing.T, binary string) []string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), configDirs[binary])
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parsing %s: %v", f, err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && envName.MatchString(s) {
				seen[s] = true
			}
			return true
		})
	}
	var out []string
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	if len(out) < 5 {
		t.Fatalf("found only %v in %s; has the config package changed shape?", out, dir)
	}
	return out
}

func TestVarsReadFindsTheContractVariables(t *testing.T) {
	for binary, want := range map[string][]string{
		"mcpserver": {"MCP_SERVER_HOST", "MCP_SERVER_PORT", "MCP_ISSUER_URL", "MCP_DATABASE_URL", "MCP_DATA_DIR", "MCP_ENCRYPTION_KEYS", "MCP_JWT_PRIVATE_KEY_FILE", "MCP_ENV", "MCP_EMBEDDER", "OPENAI_API_KEY", "OPENAI_BASE_URL", "MCP_EMBEDDING_MODEL", "MCP_CHAT_MODEL", "MCP_ALLOWED_ORIGINS", "MCP_RATE_LIMIT", "POSTGRES_HOST"},
		"webclient": {"WEBCLIENT_HOST", "WEBCLIENT_PORT", "WEBCLIENT_BASE_URL", "MCP_SERVER_URL", "MCP_SERVER_INTERNAL_URL", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_REDIRECT_URI", "OAUTH_SCOPES", "WEBCLIENT_DATABASE_URL", "WEBCLIENT_DATA_DIR", "WEBCLIENT_SECRET_KEY"},
	} {
		got := varsRead(t, binary)
		for _, v := range want {
			if !slices.Contains(got, v) {
				t.Errorf("%s: the contract's %s is not found in %s (found %v)", binary, v, configDirs[binary], got)
			}
		}
	}
}

// envExample reads .env.example into its assignments, in order.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !envName.MatchString(k) {
			t.Errorf(".env.example:%d: %q is not NAME=value", n, line)
			continue
		}
		if _, dup := vars[k]; dup {
			t.Errorf(".env.example:%d: %s is set twice", n, k)
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		vars[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vars
}

func TestEnvExampleListsEveryVariable(t *testing.T) {
	vars := envExample(t)
	for binary := range configDirs {
		for _, v := range varsRead(t, binary) {
			if _, ok := vars[v]; !ok {
				t.Errorf(".env.example does not list %s, which %s reads", v, binary)
			}
		}
	}
}

// TestEnvExampleSecretsArePlaceholders keeps real-looking secrets out of
// .env.example: each secret is a "CHANGE ME" placeholder that the services
// (or the database URL it goes into) refuse.
func TestEnvExampleSecretsArePlaceholders(t *testing.T) {
	vars := envExample(t)
	for _, k := range []string{"MCP_ENCRYPTION_KEYS", "WEBCLIENT_SECRET_KEY", "MCP_DB_PASSWORD", "WEBCLIENT_DB_PASSWORD"} {
		if !strings.Contains(vars[k], "CHANGE ME") {
			t.Errorf(".env.example: %s=%q, want a placeholder containing \"CHANGE ME\"", k, vars[k])
		}
	}
	// Shorter than the 32 characters the web client requires, so it is refused.
	if n := len(vars["WEBCLIENT_SECRET_KEY"]); n >= 32 {
		t.Errorf(".env.example: the WEBCLIENT_SECRET_KEY placeholder has %d characters; under 32 makes the web client refuse it", n)
	}
	for _, k := range []string{"OPENAI_API_KEY", "OAUTH_CLIENT_SECRET", "POSTGRES_PASSWORD"} {
		if vars[k] != "" {
			t.Errorf(".env.example: %s must be empty, not %q", k, vars[k])
		}
	}
}

// TestComposeVariablesAreDocumented: every ${VAR} docker-compose.yml
// interpolates is listed in .env.example.
func TestComposeVariablesAreDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	vars := envExample(t)
	re := regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`)
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		if _, ok := vars[m[1]]; !ok {
			t.Errorf("docker-compose.yml uses ${%s}, which .env.example does not list", m[1])
		}
	}
}

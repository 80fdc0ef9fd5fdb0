package deploy

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads docker-compose.yml as `docker compose` would with env as
// its .env file (no process environment), so the test does not depend on
// the developer's shell.
func loadCompose(t *testing.T, envFile string) (*types.Project, error) {
	t.Helper()
	root := repoRoot(t)
	var fns []cli.ProjectOptionsFn
	fns = append(fns, cli.WithWorkingDirectory(root), cli.WithName("picard"))
	if envFile != "" {
		fns = append(fns, cli.WithEnvFiles(envFile), cli.WithDotEnv)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")}, fns...)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func composeProject(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadCompose(t, filepath.Join(repoRoot(t), ".env.example"))
	if err != nil {
		t.Fatalf("loading docker-compose.yml with .env.example: %v", err)
	}
	return p
}

func TestComposeServices(t *testing.T) {
	p := composeProject(t)
	want := []string{"db-mcp", "db-webclient", "mcpserver", "webclient"}
	got := p.ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}

	ports := map[string]uint32{"mcpserver": 8001, "webclient": 8000}
	for name, port := range ports {
		s := p.Services[name]
		if len(s.Ports) != 1 || s.Ports[0].Target != port || s.Ports[0].Published != strconv.FormatUint(uint64(port), 10) {
			t.Errorf("%s publishes %+v, want container port %d on host port %d", name, s.Ports, port, port)
		}
	}
	for _, db := range []string{"db-mcp", "db-webclient"} {
		if len(p.Services[db].Ports) != 0 {
			t.Errorf("%s publishes ports %+v; the databases stay on the compose network", db, p.Services[db].Ports)
		}
	}

	for _, name := range want {
		s := p.Services[name]
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			t.Errorf("%s has no health check", name)
		}
		if s.Restart == "" || s.Restart == "no" {
			t.Errorf("%s: restart = %q, want a restart policy", name, s.Restart)
		}
	}
	for _, name := range []string{"mcpserver", "webclient"} {
		test := p.Services[name].HealthCheck.Test
		if test[0] != "CMD" || test[1] != "/usr/local/bin/"+name {
			t.Errorf("%s health check %v: the distroless image has only the binary, so the check must run it", name, test)
		}
	}

	deps := map[string][]string{
		"mcpserver": {"db-mcp"},
		"webclient": {"db-webclient", "mcpserver"},
	}
	for name, on := range deps {
		s := p.Services[name]
		for _, d := range on {
			dep, ok := s.DependsOn[d]
			if !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s must depend on %s with condition service_healthy, has %+v", name, d, s.DependsOn)
			}
		}
	}

	// Databases and the services' data directories live in named volumes.
	for name, target := range map[string]string{
		"db-mcp": "/var/lib/postgresql/data", "db-webclient": "/var/lib/postgresql/data",
		"mcpserver": "/data", "webclient": "/data",
	} {
		found := false
		for _, v := range p.Services[name].Volumes {
			if v.Target == target {
				found = true
				if v.Type != types.VolumeTypeVolume {
					t.Errorf("%s mounts %s from a %s, want a named volume", name, target, v.Type)
				} else if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s mounts volume %q, which is not declared", name, v.Source)
				}
			}
		}
		if !found {
			t.Errorf("%s has no volume at %s", name, target)
		}
	}
	if !strings.Contains(p.Services["db-mcp"].Image, "pgvector") {
		t.Errorf("db-mcp image %q is not the pgvector image", p.Services["db-mcp"].Image)
	}
}

func TestComposeImagesArePinned(t *testing.T) {
	p := composeProject(t)
	for name, s := range p.Services {
		if s.Image == "" {
			t.Errorf("%s has no image", name)
			continue
		}
		if err := pinned(s.Image); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// pinned accepts an image with an explicit tag other than latest, or a digest.
func pinned(image string) error {
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	ref := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(ref, ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("image %q has no tag (it would float as :latest)", image)
	case tag == "latest":
		return fmt.Errorf("image %q uses :latest", image)
	}
	return nil
}

func TestComposeBuildsFromTheDockerfiles(t *testing.T) {
	p := composeProject(t)
	root := repoRoot(t)
	for _, name := range []string{"mcpserver", "webclient"} {
		b := p.Services[name].Build
		if b == nil {
			t.Errorf("%s has no build section", name)
			continue
		}
		if filepath.Clean(b.Context) != root {
			t.Errorf("%s build context %q, want the repository root (the Go workspace)", name, b.Context)
		}
		want := "docker/" + name + ".Dockerfile"
		if b.Dockerfile != want {
			t.Errorf("%s dockerfile %q, want %q", name, b.Dockerfile, want)
		}
	}
}

func TestComposeSetsEveryVariable(t *testing.T) {
	p := composeProject(t)
	for binary := range configDirs {
		env := p.Services[binary].Environment
		for _, v := range varsRead(t, binary) {
			if _, ok := env[v]; !ok {
				t.Errorf("%s does not set %s in its environment", binary, v)
			}
		}
	}
	get := func(svc, k string) string {
		if v := p.Services[svc].Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	checks := []struct{ svc, key, want string }{
		{"mcpserver", "MCP_SERVER_HOST", "0.0.0.0"},
		{"mcpserver", "MCP_SERVER_PORT", "8001"},
		{"mcpserver", "MCP_ISSUER_URL", "http://localhost:8001"},
		{"mcpserver", "MCP_JWT_PRIVATE_KEY_FILE", "/run/secrets/mcp_jwt_private_key"},
		{"webclient", "WEBCLIENT_HOST", "0.0.0.0"},
		{"webclient", "WEBCLIENT_PORT", "8000"},
		{"webclient", "MCP_SERVER_URL", "http://localhost:8001"},
		{"webclient", "MCP_SERVER_INTERNAL_URL", "http://mcpserver:8001"},
		{"webclient", "WEBCLIENT_BASE_URL", "http://localhost:8000"},
	}
	for _, c := range checks {
		if got := get(c.svc, c.key); got != c.want {
			t.Errorf("%s: %s = %q, want %q", c.svc, c.key, got, c.want)
		}
	}
	for svc, db := range map[string][2]string{"mcpserver": {"MCP_DATABASE_URL", "db-mcp"}, "webclient": {"WEBCLIENT_DATABASE_URL", "db-webclient"}} {
		raw := get(svc, db[0])
		// The placeholder password is deliberately not URL-safe; check the
		// host with a URL-safe one in its place.
		raw = strings.ReplaceAll(raw, "CHANGE ME", "x")
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "postgres" || u.Hostname() != db[1] {
			t.Errorf("%s: %s = %q, want postgres://…@%s (err %v)", svc, db[0], raw, db[1], err)
		}
	}
	if s := p.Services["mcpserver"].Secrets; len(s) != 1 || s[0].Source != "mcp_jwt_private_key" {
		t.Errorf("mcpserver secrets = %+v, want the mcp_jwt_private_key secret", s)
	}
}

// TestComposeRequiresSecrets: without a .env, docker compose refuses to
// start rather than run with empty or default secrets.
func TestComposeRequiresSecrets(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadCompose(t, empty)
	if err == nil {
		t.Fatal("docker-compose.yml loaded without any secrets set; required variables must use ${VAR:?message}")
	}
	for _, v := range []string{"MCP_DB_PASSWORD", "WEBCLIENT_DB_PASSWORD", "MCP_ENCRYPTION_KEYS", "WEBCLIENT_SECRET_KEY"} {
		env := "MCP_DB_PASSWORD=a\nWEBCLIENT_DB_PASSWORD=b\nMCP_ENCRYPTION_KEYS=c\nWEBCLIENT_SECRET_KEY=d\n"
		env = strings.Replace(env, v+"=", "UNSET_"+v+"=", 1)
		f := filepath.Join(dir, v+".env")
		if err := os.WriteFile(f, []byte(env), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadCompose(t, f); err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("without %s: err = %v, want an error naming it", v, err)
		}
	}
}

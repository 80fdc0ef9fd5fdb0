package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// blueprint is the part of Render's Blueprint spec that render.yaml uses.
type blueprint struct {
	Databases []struct {
		Name                 string `yaml:"name"`
		DatabaseName         string `yaml:"databaseName"`
		Plan                 string `yaml:"plan"`
		PostgresMajorVersion string `yaml:"postgresMajorVersion"`
		User                 string `yaml:"user"`
		IPAllowList          []any  `yaml:"ipAllowList"`
	} `yaml:"databases"`
	Services []renderService `yaml:"services"`
}

type renderService struct {
	Type            string      `yaml:"type"`
	Name            string      `yaml:"name"`
	Runtime         string      `yaml:"runtime"`
	Plan            string      `yaml:"plan"`
	DockerfilePath  string      `yaml:"dockerfilePath"`
	DockerContext   string      `yaml:"dockerContext"`
	HealthCheckPath string      `yaml:"healthCheckPath"`
	AutoDeploy      bool        `yaml:"autoDeploy"`
	EnvVars         []renderEnv `yaml:"envVars"`
}

type renderEnv struct {
	Key           string  `yaml:"key"`
	Value         *string `yaml:"value"`
	GenerateValue bool    `yaml:"generateValue"`
	Sync          *bool   `yaml:"sync"`
	FromDatabase  *struct {
		Name     string `yaml:"name"`
		Property string `yaml:"property"`
	} `yaml:"fromDatabase"`
	FromService *struct {
		Type      string `yaml:"type"`
		Name      string `yaml:"name"`
		EnvVarKey string `yaml:"envVarKey"`
		Property  string `yaml:"property"`
	} `yaml:"fromService"`
}

func loadBlueprint(t *testing.T) blueprint {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "render.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var b blueprint
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt field is an error, not silently ignored
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("render.yaml: %v", err)
	}
	return b
}

func TestRenderBlueprint(t *testing.T) {
	b := loadBlueprint(t)
	root := repoRoot(t)

	dbs := map[string]bool{}
	for _, d := range b.Databases {
		dbs[d.Name] = true
		if d.PostgresMajorVersion != "17" {
			t.Errorf("database %s: postgresMajorVersion %q, want \"17\" as in docker-compose.yml", d.Name, d.PostgresMajorVersion)
		}
		if d.IPAllowList == nil || len(d.IPAllowList) != 0 {
			t.Errorf("database %s: ipAllowList should be [] (reachable from Render's private network only)", d.Name)
		}
	}
	if len(dbs) != 2 {
		t.Errorf("render.yaml has %d databases, want 2 (one per service)", len(dbs))
	}

	services := map[string]renderService{}
	for _, s := range b.Services {
		services[s.Name] = s
	}
	binaries := map[string]struct{ service, health, port string }{
		"mcpserver": {"picard-mcpserver", "/readyz", "8001"},
		"webclient": {"picard-webclient", "/healthz", "8000"},
	}
	usedDBs := map[string]string{}
	for binary, want := range binaries {
		s, ok := services[want.service]
		if !ok {
			t.Errorf("render.yaml has no service %s", want.service)
			continue
		}
		if s.Type != "web" || s.Runtime != "docker" {
			t.Errorf("%s: type %q runtime %q, want web and docker", s.Name, s.Type, s.Runtime)
		}
		if s.DockerfilePath != "./docker/"+binary+".Dockerfile" || s.DockerContext != "." {
			t.Errorf("%s: dockerfilePath %q dockerContext %q, want ./docker/%s.Dockerfile and .", s.Name, s.DockerfilePath, s.DockerContext, binary)
		}
		if _, err := os.Stat(filepath.Join(root, s.DockerfilePath)); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
		if s.HealthCheckPath != want.health {
			t.Errorf("%s: healthCheckPath %q, want %q", s.Name, s.HealthCheckPath, want.health)
		}

		env := map[string]renderEnv{}
		for _, e := range s.EnvVars {
			if _, dup := env[e.Key]; dup {
				t.Errorf("%s sets %s twice", s.Name, e.Key)
			}
			env[e.Key] = e
			sources := 0
			for _, set := range []bool{e.Value != nil, e.GenerateValue, e.Sync != nil, e.FromDatabase != nil, e.FromService != nil} {
				if set {
					sources++
				}
			}
			if sources != 1 {
				t.Errorf("%s: %s has %d value sources, want exactly one", s.Name, e.Key, sources)
			}
			if e.FromDatabase != nil {
				if !dbs[e.FromDatabase.Name] {
					t.Errorf("%s: %s comes from database %q, which render.yaml does not declare", s.Name, e.Key, e.FromDatabase.Name)
				}
				usedDBs[e.FromDatabase.Name] = s.Name
			}
			if e.FromService != nil {
				if _, ok := services[e.FromService.Name]; !ok {
					t.Errorf("%s: %s comes from service %q, which render.yaml does not declare", s.Name, e.Key, e.FromService.Name)
				}
			}
		}

		// Only variables the binary reads (and Render's PORT), so a typo
		// cannot hide.
		read := varsRead(t, binary)
		for k := range env {
			if k != "PORT" && !slices.Contains(read, k) {
				t.Errorf("%s sets %s, which %s does not read", s.Name, k, binary)
			}
		}
		if v := env["PORT"].Value; v == nil || *v != want.port {
			t.Errorf("%s: PORT should be %q (Render routes to it)", s.Name, want.port)
		}

		switch binary {
		case "mcpserver":
			wantValue(t, s.Name, env, "MCP_ENV", "production")
			wantValue(t, s.Name, env, "MCP_SERVER_HOST", "0.0.0.0")
			wantValue(t, s.Name, env, "MCP_SERVER_PORT", want.port)
			wantFromDB(t, s.Name, env, "MCP_DATABASE_URL")
			wantGenerated(t, s.Name, env, "MCP_ENCRYPTION_KEYS")
			wantSet(t, s.Name, env, "MCP_ISSUER_URL", "MCP_JWT_PRIVATE_KEY_FILE", "WEBCLIENT_BASE_URL")
			if e := env["OPENAI_API_KEY"]; e.Sync == nil || *e.Sync {
				t.Errorf("%s: OPENAI_API_KEY should be sync: false (asked for, never committed)", s.Name)
			}
		case "webclient":
			wantValue(t, s.Name, env, "WEBCLIENT_HOST", "0.0.0.0")
			wantValue(t, s.Name, env, "WEBCLIENT_PORT", want.port)
			wantFromDB(t, s.Name, env, "WEBCLIENT_DATABASE_URL")
			wantGenerated(t, s.Name, env, "WEBCLIENT_SECRET_KEY")
			wantSet(t, s.Name, env, "WEBCLIENT_BASE_URL", "MCP_SERVER_URL")
		}
	}
	if len(usedDBs) != 2 {
		t.Errorf("the services use databases %v; each service should have its own", usedDBs)
	}
}

func wantValue(t *testing.T, svc string, env map[string]renderEnv, k, v string) {
	t.Helper()
	if e, ok := env[k]; !ok || e.Value == nil || *e.Value != v {
		t.Errorf("%s: %s should be %q", svc, k, v)
	}
}

func wantFromDB(t *testing.T, svc string, env map[string]renderEnv, k string) {
	t.Helper()
	if e := env[k]; e.FromDatabase == nil || e.FromDatabase.Property != "connectionString" {
		t.Errorf("%s: %s should come fromDatabase with property connectionString", svc, k)
	}
}

func wantGenerated(t *testing.T, svc string, env map[string]renderEnv, k string) {
	t.Helper()
	if !env[k].GenerateValue {
		t.Errorf("%s: %s should be generated by Render (generateValue: true)", svc, k)
	}
}

func wantSet(t *testing.T, svc string, env map[string]renderEnv, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := env[k]; !ok {
			t.Errorf("%s does not set %s", svc, k)
		}
	}
}

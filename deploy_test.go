package gofer_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/workflows"
)

// docker-compose.yml is valid Compose (checked by compose-spec's own loader, as `docker compose
// config` would, since no Docker engine runs here) and holds the whole production topology, every
// long-running service with a health check.
func TestComposeTopology(t *testing.T) {
	bin, err := testserver.Binary("composecheck")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "docker-compose.yml").Output()
	if err != nil {
		t.Fatalf("docker-compose.yml does not validate: %v\n%s", err, err.(*exec.ExitError).Stderr)
	}
	var project struct {
		Services map[string]struct {
			Command     []string          `json:"command"`
			Environment map[string]string `json:"environment"`
			Healthcheck *struct {
				Test []string `json:"test"`
			} `json:"healthcheck"`
			Build *struct{} `json:"build"`
		} `json:"services"`
	}
	if err := json.Unmarshal(out, &project); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"temporal", "postgresql", "temporal-ui", "mongo", "minio", "jaeger", "gofer", "gofer-worker"} {
		s, ok := project.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no health check", name)
		}
	}
	front, worker := project.Services["gofer"], project.Services["gofer-worker"]
	if strings.Join(front.Command, " ") != "serve --worker=false" || strings.Join(worker.Command, " ") != "worker" {
		t.Errorf("gofer commands: front end %q, worker %q", front.Command, worker.Command)
	}
	for _, s := range []string{"gofer", "gofer-worker"} {
		env := project.Services[s].Environment
		if env["GOFER_STORAGE"] != "s3" || env["GOFER_METADATA"] != "mongo" || project.Services[s].Build == nil {
			t.Errorf("%s is not built from the Dockerfile on S3 and MongoDB: %v", s, env)
		}
		if e := env["OTEL_EXPORTER_OTLP_ENDPOINT"]; e != "http://jaeger:4318" {
			t.Errorf("%s does not send traces to Jaeger's OTLP/HTTP port: %v", s, e)
		}
	}
	sa := strings.Join(project.Services["temporal-search-attributes"].Command, " ")
	for _, name := range workflows.SearchAttributes {
		if !strings.Contains(sa, "--name "+name+" --type Keyword") {
			t.Errorf("the search-attribute job does not register %s: %q", name, sa)
		}
	}
}

// The Dockerfile's Go build step, run here as it is written (outside Docker), builds gofer.
func TestDockerfileBuildStep(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (.*go build .*-o )/out/gofer( .*)$`).FindSubmatch(df)
	if m == nil {
		t.Fatal("no `RUN ... go build ... -o /out/gofer ...` step in the Dockerfile")
	}
	out := filepath.Join(t.TempDir(), "gofer")
	cmd := exec.Command("sh", "-c", string(m[1])+out+string(m[2]))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	if b, err := exec.Command(out, "version").Output(); err != nil || !strings.HasPrefix(string(b), "gofer ") {
		t.Errorf("built binary: %q, %v", b, err)
	}
	goMod, _ := os.ReadFile("go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if goVersion == nil || !strings.Contains(string(df), "FROM golang:"+string(goVersion[1])+"-") {
		t.Errorf("the Dockerfile's Go image does not match go.mod's go %s", goVersion[1])
	}
}

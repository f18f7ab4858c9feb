package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile checks the Dockerfile without building it (TestDockerFleet builds it): the
// official base images by name (the ones scripts/images.sh stands in for), the build the
// README and CI use, a non-root runtime with only the runtime libraries, no secret.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(src)
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	images, err := os.ReadFile("../scripts/images.sh")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	if goVer == nil {
		t.Fatal("go.mod: no go directive")
	}
	arg := func(name string) string {
		m := regexp.MustCompile(`(?m)^ARG ` + name + `=(\S+)\s*$`).FindStringSubmatch(df)
		if m == nil {
			t.Fatalf("Dockerfile: no ARG %s=default", name)
		}
		return m[1]
	}
	if got, want := arg("GO_IMAGE"), "golang:"+goVer[1]+"-bookworm"; got != want {
		t.Errorf("build image %s, want %s (go.mod says go %s)", got, want, goVer[1])
	}
	if got := arg("RUNTIME_IMAGE"); got != "debian:bookworm-slim" {
		t.Errorf("runtime image %s, want debian:bookworm-slim (Debian's libczmq4, like the build's libczmq-dev)", got)
	}
	for _, want := range []string{`IMG_DEBIAN="debian:bookworm-slim"`, `GO_VERSION_TAG="` + goVer[1] + `"`, `IMG_GOLANG="golang:${GO_VERSION_TAG}-bookworm"`} {
		if !strings.Contains(string(images), want) {
			t.Errorf("scripts/images.sh does not stand in for the Dockerfile's base images: no %s", want)
		}
	}
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) != 2 || froms[0][1] != "${GO_IMAGE}" || froms[1][1] != "${RUNTIME_IMAGE}" {
		t.Errorf("want two stages FROM ${GO_IMAGE} AS build, FROM ${RUNTIME_IMAGE}; got %v", froms)
	}
	if !regexp.MustCompile(`go build -tags goczmq [^\n]*\\?\n?[^\n]*\./cmd/difyload`).MatchString(df) {
		t.Error("Dockerfile does not build ./cmd/difyload with -tags goczmq")
	}
	runtime := df[strings.LastIndex(df, "\nFROM "):]
	for _, want := range []string{"libczmq4", "ca-certificates", `ENTRYPOINT ["difyload"]`, `CMD ["worker"]`, "COPY --from=build /out/difyload /usr/local/bin/difyload"} {
		if !strings.Contains(runtime, want) {
			t.Errorf("runtime stage: no %s", want)
		}
	}
	for _, bad := range []string{"libczmq-dev", "golang", "gcc"} {
		if strings.Contains(runtime, bad) {
			t.Errorf("runtime stage installs %s: build tools belong in the build stage", bad)
		}
	}
	if dockerfileUID(t) == 0 {
		t.Error("runtime USER is root")
	}
	for _, m := range regexp.MustCompile(`(?m)^(?:ENV|ARG)\s+([A-Za-z_0-9]+)`).FindAllStringSubmatch(df, -1) {
		if regexp.MustCompile(`(?i)KEY|SECRET|TOKEN|PASSWORD`).MatchString(m[1]) {
			t.Errorf("Dockerfile declares %s: keys are passed at run time only", m[1])
		}
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "**/.env", "**/*.env"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).Match(ignore) {
			t.Errorf(".dockerignore: no %s", want)
		}
	}
	// Every package the binary needs reaches the build context.
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "go", "list", "-deps", "-tags", "goczmq", "-f", "{{.Dir}}", "./cmd/difyload")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/difyload: %v", err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // the standard library and modules
		}
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if regexp.MustCompile(`(?m)^/?` + regexp.QuoteMeta(top) + `/?$`).Match(ignore) {
			t.Errorf(".dockerignore excludes %s, which ./cmd/difyload imports (%s)", top, rel)
		}
	}
}

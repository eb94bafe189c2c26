package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

var dockerfilePath = filepath.Join(repoRoot, "Dockerfile")

// distrolessStatic matches the distroless static base, by tag and/or digest.
var distrolessStatic = regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$`)

// dockerStage is one FROM ... section of a Dockerfile.
type dockerStage struct {
	name  string // the AS name, lower case; "" if none
	base  string // image, with global ARG defaults substituted
	nodes []*parser.Node
}

// dockerfile is what the tests need from a parsed Dockerfile.
type dockerfile struct {
	stages     []dockerStage
	entrypoint []string // of the final stage (exec form)
	problems   []string // violations of the image contract
}

// args returns the words after an instruction's keyword.
func args(n *parser.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

// keyword is the instruction's name in lower case (the parser keeps the case
// it was written in).
func keyword(n *parser.Node) string { return strings.ToLower(n.Value) }

// flagValue returns the value of --name=value among an instruction's flags.
func flagValue(n *parser.Node, name string) (string, bool) {
	for _, f := range n.Flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

var argRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// parseDockerfile parses src with BuildKit's parser and checks the contract
// the deployment relies on:
//   - the final stage is distroless static;
//   - it runs as a non-root USER, set explicitly;
//   - its ENTRYPOINT is exec form, and the binary it names is copied from a
//     build stage's bin/consumer; bin/producer is shipped as well;
//   - that build stage is a golang image running `make build-static`.
func parseDockerfile(src string) (*dockerfile, error) {
	res, err := parser.Parse(strings.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("parse Dockerfile: %w", err)
	}
	df := &dockerfile{}
	globals := map[string]string{}
	for _, n := range res.AST.Children {
		switch kw := keyword(n); {
		case kw == "arg" && len(df.stages) == 0:
			for _, a := range args(n) {
				k, v, _ := strings.Cut(a, "=")
				globals[k] = strings.Trim(v, `"`)
			}
		case kw == "from":
			a := args(n)
			if len(a) == 0 {
				return nil, fmt.Errorf("line %d: FROM without an image", n.StartLine)
			}
			st := dockerStage{base: argRef.ReplaceAllStringFunc(a[0], func(ref string) string {
				m := argRef.FindStringSubmatch(ref)
				return globals[m[1]+m[2]]
			})}
			if len(a) == 3 && strings.EqualFold(a[1], "as") {
				st.name = strings.ToLower(a[2])
			}
			df.stages = append(df.stages, st)
		case len(df.stages) > 0:
			last := &df.stages[len(df.stages)-1]
			last.nodes = append(last.nodes, n)
		}
	}
	if len(df.stages) == 0 {
		return nil, fmt.Errorf("Dockerfile has no FROM")
	}
	problem := func(format string, a ...any) { df.problems = append(df.problems, fmt.Sprintf(format, a...)) }

	final := df.stages[len(df.stages)-1]
	if !distrolessStatic.MatchString(final.base) {
		problem("final stage is FROM %s; want gcr.io/distroless/static (no libc, no shell: static binaries only)", final.base)
	}

	var user string
	var entry *parser.Node
	copies := map[string]*parser.Node{} // destination → COPY
	for _, n := range final.nodes {
		switch keyword(n) {
		case "user":
			if a := args(n); len(a) > 0 {
				user = a[0]
			}
		case "entrypoint":
			entry = n
		case "copy":
			if a := args(n); len(a) >= 2 {
				copies[a[len(a)-1]] = n
			}
		}
	}
	switch u, _, _ := strings.Cut(user, ":"); {
	case user == "":
		problem("final stage sets no USER; set a non-root one explicitly (distroless nonroot is 65532)")
	case u == "root":
		problem("final stage runs as USER %s", user)
	default:
		if id, err := strconv.Atoi(u); err == nil && id == 0 {
			problem("final stage runs as USER %s (uid 0 is root)", user)
		}
	}

	if entry == nil {
		problem("final stage has no ENTRYPOINT")
		return df, nil
	}
	if !entry.Attributes["json"] {
		problem("line %d: ENTRYPOINT must be exec form [\"/consumer\"] (shell form needs /bin/sh, which distroless lacks, and breaks signal delivery)", entry.StartLine)
		return df, nil
	}
	df.entrypoint = args(entry)
	if len(df.entrypoint) == 0 {
		problem("line %d: ENTRYPOINT is empty", entry.StartLine)
		return df, nil
	}

	stageByName := map[string]dockerStage{}
	for _, s := range df.stages {
		if s.name != "" {
			stageByName[s.name] = s
		}
	}
	checkShipped := func(dest, binary string) {
		cp, ok := copies[dest]
		if !ok {
			problem("final stage does not COPY anything to %s", dest)
			return
		}
		a := args(cp)
		src := a[0]
		from, ok := flagValue(cp, "from")
		if !ok {
			problem("line %d: %s must be copied --from the build stage", cp.StartLine, dest)
			return
		}
		if !strings.HasSuffix(src, "bin/"+binary) || len(a) != 2 {
			problem("line %d: %s is copied from %v; want the build stage's bin/%s", cp.StartLine, dest, a[:len(a)-1], binary)
		}
		build, ok := stageByName[strings.ToLower(from)]
		if !ok {
			problem("line %d: --from=%s is not a named stage", cp.StartLine, from)
			return
		}
		if !strings.HasPrefix(build.base, "golang:") && build.base != "golang" {
			problem("build stage %q is FROM %s; want a golang image", build.name, build.base)
		}
		made := false
		for _, n := range build.nodes {
			if keyword(n) == "run" && strings.Contains(strings.Join(args(n), " "), "make build-static") {
				made = true
			}
		}
		if !made {
			problem("build stage %q does not RUN make build-static (the target deploy/static_test.go checks)", build.name)
		}
	}
	checkShipped(df.entrypoint[0], "consumer")
	if filepath.Base(df.entrypoint[0]) != "consumer" {
		problem("ENTRYPOINT runs %s; want the consumer", df.entrypoint[0])
	}
	producer := filepath.Join(filepath.Dir(df.entrypoint[0]), "producer")
	checkShipped(producer, "producer")
	return df, nil
}

// readDockerfile parses the file at path and fails the test on a parse error.
func readDockerfile(t *testing.T, path string) *dockerfile {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	df, err := parseDockerfile(string(src))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(df.entrypoint) == 0 {
		t.Fatalf("%s: no usable ENTRYPOINT: %s", path, strings.Join(df.problems, "; "))
	}
	return df
}

// TestDockerfile checks the repository's Dockerfile.
func TestDockerfile(t *testing.T) {
	df := readDockerfile(t, dockerfilePath)
	for _, p := range df.problems {
		t.Error(p)
	}
	if len(df.stages) < 2 {
		t.Errorf("want a multi-stage build (build stage, then the runtime image); got %d stage(s)", len(df.stages))
	}
}

// TestDockerfileCheckCatchesMistakes runs the checks on Dockerfiles that break
// each rule.
func TestDockerfileCheckCatchesMistakes(t *testing.T) {
	good := `ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
RUN make build-static VERSION=x
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/consumer /consumer
COPY --from=build /src/bin/producer /producer
USER 65532:65532
ENTRYPOINT ["/consumer"]
`
	tests := []struct {
		name, old, new, want string
	}{
		{"good", "", "", ""},
		{"debian base", "gcr.io/distroless/static-debian12:nonroot", "debian:12", "want gcr.io/distroless/static"},
		{"distroless with libc", "distroless/static-debian12", "distroless/base-debian12", "want gcr.io/distroless/static"},
		{"no user", "USER 65532:65532\n", "", "sets no USER"},
		{"root by name", "USER 65532:65532", "USER root", "runs as USER root"},
		{"root by uid", "USER 65532:65532", "USER 0:0", "uid 0"},
		{"shell form", `ENTRYPOINT ["/consumer"]`, "ENTRYPOINT /consumer", "exec form"},
		{"wrong binary", `ENTRYPOINT ["/consumer"]`, `ENTRYPOINT ["/producer"]`, "want the consumer"},
		{"not from build", "COPY --from=build /src/bin/consumer /consumer", "COPY bin/consumer /consumer", "--from the build stage"},
		{"no make", "RUN make build-static VERSION=x", "RUN go build -o bin/ ./cmd/...", "does not RUN make build-static"},
		{"no producer", "COPY --from=build /src/bin/producer /producer\n", "", "to /producer"},
		{"build stage not go", "golang:${GO_VERSION}", "alpine:3", "want a golang image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := good
			if tt.old != "" {
				if !strings.Contains(src, tt.old) {
					t.Fatalf("fixture lacks %q", tt.old)
				}
				src = strings.Replace(src, tt.old, tt.new, 1)
			}
			df, err := parseDockerfile(src)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(df.problems, "; ")
			if tt.want == "" && got != "" {
				t.Fatalf("good Dockerfile: problems %s", got)
			}
			if tt.want != "" && !strings.Contains(got, tt.want) {
				t.Fatalf("problems = %q; want one containing %q", got, tt.want)
			}
		})
	}
}

package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func noEnv(string) (string, bool) { return "", false }

func TestIngestFileBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no input", nil, "ingest-file needs at least one PATH"},
		{"stdin twice", []string{"-", "-"}, "- (standard input) can be given once"},
		{"batch rows", []string{"--batch-rows=0", "in.ndjson"}, "--batch-rows 0: must be at least 1"},
		{"progress", []string{"--progress=sometimes", "in.ndjson"}, `--progress "sometimes": use auto, always or never`},
		{"log level", []string{"--log-level=loud", "in.ndjson"}, `--log-level "loud": use debug, info, warn or error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errOut bytes.Buffer
			_, err := parseIngestFile(tc.args, noEnv, &errOut)
			if !errors.As(err, new(*usageError)) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
	c, err := parseIngestFile([]string{"--log-level=debug", "in.ndjson"}, noEnv, &bytes.Buffer{})
	if err != nil || c.LogLevel != "debug" {
		t.Fatalf("--log-level=debug: %+v, %v; want accepted", c.LogLevel, err)
	}
}

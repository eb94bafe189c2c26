package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/paystream/paystream/internal/flagenv"
)

// The README's configuration reference names every query flag with its
// environment variable.
func TestREADMEListsEveryQuerySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	noEnv := func(string) (string, bool) { return "", false }
	_ = run(context.Background(), []string{"--help"}, noEnv, strings.NewReader(""), &b, &b)
	names := flagenv.UsageEnvNames(b.String())
	if len(names) < 5 {
		t.Fatalf("--help lists only %v:\n%s", names, b.String())
	}
	for _, missing := range flagenv.Undocumented(readme, b.String()) {
		t.Errorf("README does not document query %s", missing)
	}
}

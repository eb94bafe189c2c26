package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/paystream/paystream/internal/flagenv"
	"github.com/paystream/paystream/pkg/producer"
)

// The README's configuration reference names every producer flag with its
// environment variable.
func TestREADMEListsEveryProducerSetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg := producer.DefaultConfig()
	var b bytes.Buffer
	newFlagSet(&cfg, &b).Usage()
	names := flagenv.UsageEnvNames(b.String())
	if len(names) < 10 {
		t.Fatalf("--help lists only %v", names)
	}
	for _, env := range names {
		flagName := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, flagenv.Prefix)), "_", "-")
		if !bytes.Contains(readme, []byte("`"+env+"`")) || !bytes.Contains(readme, []byte("`"+flagName+"`")) {
			t.Errorf("README does not document producer %s (%s)", flagName, env)
		}
	}
}

package main

import (
	"bytes"
	"os"
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
	for _, missing := range flagenv.Undocumented(readme, b.String()) {
		t.Errorf("README does not document producer %s", missing)
	}
}

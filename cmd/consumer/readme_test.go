package main

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/paystream/paystream/internal/flagenv"
)

// The README's configuration reference names every flag of the consumer
// and of ingest-file, status and replay-dead-letters with its environment
// variable.
func TestREADMEListsEveryConsumerSetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	for name, help := range map[string]func(*bytes.Buffer){
		"consumer": func(b *bytes.Buffer) { _, _ = parseService([]string{"--help"}, noEnv, b) },
		"consumer ingest-file": func(b *bytes.Buffer) {
			_ = runIngestFile(context.Background(), []string{"--help"}, b, b)
		},
		"consumer status":   func(b *bytes.Buffer) { _, _ = parseStatus([]string{"--help"}, noEnv, b) },
		"consumer maintain": func(b *bytes.Buffer) { _, _ = parseMaintain([]string{"--help"}, noEnv, b) },
		"consumer replay-dead-letters": func(b *bytes.Buffer) {
			_, _ = parseReplay([]string{"--help"}, noEnv, b)
		},
	} {
		var b bytes.Buffer
		help(&b)
		names := flagenv.UsageEnvNames(b.String())
		if len(names) < 5 {
			t.Fatalf("%s --help lists only %v:\n%s", name, names, b.String())
		}
		for _, missing := range flagenv.Undocumented(readme, b.String()) {
			t.Errorf("README does not document %s %s", name, missing)
		}
	}
}

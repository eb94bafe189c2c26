package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"
)

func TestSDKLoggerWritesJSON(t *testing.T) {
	var b bytes.Buffer
	l := sdkLogger{slog.New(slog.NewJSONHandler(&b, nil))}
	l.Logf(logging.Warn, "failed to close HTTP response body, %s", "checksum")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatalf("SDK message is not a JSON log line: %q", b.String())
	}
	if rec["level"] != "WARN" || !strings.Contains(rec["detail"].(string), "checksum") {
		t.Fatalf("log line %v", rec)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// PAYSTREAM_FAULT_CLOCK_OFFSET is read as a Go duration, refused with a
// message naming it when it is not one, and kept out of --help: it is
// fault injection, not configuration.
func TestFaultClockOffsetEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    time.Duration
		wantErr string
	}{
		{name: "unset"},
		{name: "empty", env: map[string]string{faultClockOffsetEnv: ""}},
		{name: "ahead", env: map[string]string{faultClockOffsetEnv: "90s"}, want: 90 * time.Second},
		{name: "behind", env: map[string]string{faultClockOffsetEnv: "-1m15s"}, want: -75 * time.Second},
		{name: "not a duration", env: map[string]string{faultClockOffsetEnv: "90"}, wantErr: faultClockOffsetEnv + `="90"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parseServiceCase(t, nil, tc.env, tc.wantErr)
			if !ok {
				return
			}
			if c.FaultClockOffset != tc.want {
				t.Errorf("offset %v, want %v", c.FaultClockOffset, tc.want)
			}
		})
	}
	var help bytes.Buffer
	_, _ = parseService([]string{"--help"}, noEnv, &help)
	if help.Len() == 0 || strings.Contains(help.String(), "FAULT") || strings.Contains(help.String(), "clock-offset") {
		t.Errorf("--help (%d bytes) must exist and not mention the clock fault:\n%s", help.Len(), help.String())
	}
}

// A consumer started with the clock fault says so at start, at WARN.
func TestFaultClockOffsetWarnsAtStart(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, offset := range []time.Duration{0, -80 * time.Second} {
		cfg := localServiceConfig(t.TempDir(), "payments")
		cfg.FaultClockOffset = offset
		var out bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&out, nil))
		newConsumerRegistry(t, cfg, log)
		var warned []map[string]any
		for line := range strings.Lines(out.String()) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			if rec["level"] == "WARN" && rec["env"] == faultClockOffsetEnv {
				warned = append(warned, rec)
			}
		}
		switch {
		case offset == 0 && len(warned) > 0:
			t.Errorf("no offset, yet warned: %v", warned)
		case offset != 0 && (len(warned) != 1 || warned[0]["offset"] != offset.String()):
			t.Errorf("offset %s: warnings %v, want one naming the offset", offset, warned)
		}
	}
}

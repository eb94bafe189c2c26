package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	env := func(string) (string, bool) { return "", false }
	if err := runHealthcheck(context.Background(), []string{"--metrics-addr", addr}, env, io.Discard); err != nil {
		t.Fatalf("healthy consumer: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := runHealthcheck(context.Background(), []string{"--metrics-addr", addr}, env, io.Discard); err == nil {
		t.Fatal("unhealthy consumer passed the health check")
	}
	fromEnv := func(k string) (string, bool) { return addr, k == "PAYSTREAM_METRICS_ADDR" }
	if err := runHealthcheck(context.Background(), nil, fromEnv, io.Discard); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("want the 503 from PAYSTREAM_METRICS_ADDR's server, got %v", err)
	}
	srv.Close()
	if err := runHealthcheck(context.Background(), []string{"--metrics-addr", addr}, env, io.Discard); err == nil {
		t.Fatal("no consumer running passed the health check")
	}
	err := runHealthcheck(context.Background(), []string{"--metrics-addr", "nonsense"}, env, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Fatalf("bad address: %v", err)
	}
}

package testenv

import (
	"net/http"
	"testing"
)

func TestMotoStartsAndAnswers(t *testing.T) {
	ep := StartMoto(t)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ep+"/moto-api/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("moto not reachable at %s: %v", ep, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moto-api status %d", resp.StatusCode)
	}
}

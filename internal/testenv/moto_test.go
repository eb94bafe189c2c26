package testenv

import (
	"net/http"
	"testing"
)

func TestMotoStartsAndAnswers(t *testing.T) {
	ep := StartMoto(t)
	resp, err := http.Get(ep + "/moto-api/")
	if err != nil {
		t.Fatalf("moto not reachable at %s: %v", ep, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moto-api status %d", resp.StatusCode)
	}
}

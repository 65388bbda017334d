package jsonout

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestSchemaComesFirst(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, Schema("status", 1), struct {
		State string `json:"state"`
	}{"up"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "{\n  \"schema\": \"clearpath.status/v1\",\n  \"state\": \"up\"") {
		t.Fatalf("got %s", b.String())
	}
	b.Reset()
	Write(&b, Schema("empty", 1), struct{}{})
	if strings.TrimSpace(b.String()) != "{\n  \"schema\": \"clearpath.empty/v1\"\n}" {
		t.Fatalf("empty object: %s", b.String())
	}
}

func TestOwnSchemaKept(t *testing.T) {
	var b bytes.Buffer
	Write(&b, Schema("x", 1), map[string]string{"schema": "clearpath.doctor/v1"})
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["schema"] != "clearpath.doctor/v1" || len(m) != 1 {
		t.Fatalf("got %s (%v)", b.String(), err)
	}
}

func TestListsAreNeverNull(t *testing.T) {
	var b bytes.Buffer
	var none []string
	if err := List(&b, Schema("peers", 1), "peers", none); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"peers": []`) || !strings.Contains(b.String(), `"schema": "clearpath.peers/v1"`) {
		t.Fatalf("got %s", b.String())
	}
	if err := Write(&b, "s", []int{1}); err == nil {
		t.Fatal("a list given to Write was accepted")
	}
}

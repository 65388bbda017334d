package store

import (
	"encoding/json"
	"fmt"
)

// MaxStoredGroups bounds what one peer row keeps: a token with more groups
// is refused at registration (the gateway names the limit).
const MaxStoredGroups = 1024

func encodeGroups(gs []string) (string, error) {
	if len(gs) > MaxStoredGroups {
		return "", fmt.Errorf("store peer: %d groups, more than %d", len(gs), MaxStoredGroups)
	}
	if gs == nil {
		gs = []string{}
	}
	b, err := json.Marshal(gs)
	return string(b), err
}

func decodeGroups(s string) ([]string, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var gs []string
	if err := json.Unmarshal([]byte(s), &gs); err != nil {
		return nil, fmt.Errorf("peer groups %q: %w", s, err)
	}
	return gs, nil
}

package store

import (
	"encoding/json"
	"fmt"
	"sort"
)

// Groups at registration (migration 5): each peer keeps the OIDC groups its
// user's token carried when it registered or renewed, as a JSON array, so
// that access rules by group (config access.go) are decided from them at
// start, at reload and on every gateway sharing the store.
const groupsSchema = `
ALTER TABLE peers ADD COLUMN oidc_groups TEXT NOT NULL DEFAULT '[]';
`

func init() {
	migrations = append(migrations, migration{5, groupsSchema})
	sort.SliceStable(migrations, func(i, j int) bool { return migrations[i].version < migrations[j].version })
}

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

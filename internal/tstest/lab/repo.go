package lab

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
)

const modulePath = "github.com/clearpath-vpn/clearpath"

// RepoRoot finds the repository root by walking up from the working
// directory to the go.mod of this module (tests run in their package dir).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("lab: not inside the clearpath repository (no go.mod of " + modulePath + " above the working directory)")
		}
		dir = parent
	}
}

package control

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxToken bounds a bearer token (and a refresh token) in an up request
// and in a token file.
const MaxToken = 64 << 10

// ErrEmptyTokenFile: the token file holds nothing (yet): whoever writes it
// has not, or the login it came from ended. Its text ends a sentence
// ("token file PATH is empty").
var ErrEmptyTokenFile = errors.New("empty")

// ReadTokenFile reads one bearer token from path, the one reader of a token
// file for `vpn up --token-file`, the tray's --token-file and the agent
// re-reading UpRequest.TokenFile: white space around it is dropped, an
// empty file is ErrEmptyTokenFile, more than one word or more than
// MaxToken bytes is refused (read no further than that).
func ReadTokenFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("token file: no path given")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	const limit = MaxToken + 64 // a token and a little white space around it
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if len(b) > limit || len(tok) > MaxToken {
		return "", fmt.Errorf("token file %s: longer than %d KiB: not a token", path, MaxToken>>10)
	}
	if tok == "" {
		return "", fmt.Errorf("token file %s is %w", path, ErrEmptyTokenFile)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("token file %s holds more than one token or stray text", path)
	}
	return tok, nil
}

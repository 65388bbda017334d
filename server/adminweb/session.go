package adminweb

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// session is one admin's login, kept in the gateway's memory only: the
// cookie holds a random id, never the token or the identity.
type session struct {
	Email, Subject string
	CSRF           string
	Expires        time.Time
	// flash is the outcome of the last change, shown once.
	flash, flashErr string
}

// login is an authorization request in flight (state -> PKCE verifier,
// nonce), bound to the browser that started it by the login cookie.
type login struct {
	verifier, nonce string
	expires         time.Time
}

// maxSessions and maxLogins bound what anonymous or logged-in clients can
// make the gateway keep.
const (
	maxSessions = 10000
	maxLogins   = 10000
	loginTTL    = 10 * time.Minute
)

type sessions struct {
	mu     sync.Mutex
	byID   map[string]*session
	logins map[string]login
}

func newSessions() *sessions {
	return &sessions{byID: map[string]*session{}, logins: map[string]login{}}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) sweep(now time.Time) {
	for id, x := range s.byID {
		if !now.Before(x.Expires) {
			delete(s.byID, id)
		}
	}
	for id, l := range s.logins {
		if !now.Before(l.expires) {
			delete(s.logins, id)
		}
	}
}

// create stores a new session and returns its id; false when the table is
// full of live sessions.
func (s *sessions) create(x *session, now time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= maxSessions {
		s.sweep(now)
		if len(s.byID) >= maxSessions {
			return "", false
		}
	}
	id := randomToken()
	s.byID[id] = x
	return id, true
}

// get returns a copy of the live session id names.
func (s *sessions) get(id string, now time.Time) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	if !now.Before(x.Expires) {
		delete(s.byID, id)
		return session{}, false
	}
	return *x, true
}

// flash sets (msg, errMsg) on session id, or takes them (take true).
func (s *sessions) flash(id string, msg, errMsg string, take bool) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.byID[id]
	if !ok {
		return "", ""
	}
	if take {
		m, e := x.flash, x.flashErr
		x.flash, x.flashErr = "", ""
		return m, e
	}
	x.flash, x.flashErr = msg, errMsg
	return "", ""
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// startLogin stores l under a new state; it always succeeds (the bool is
// kept for callers).
func (s *sessions) startLogin(l login, now time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logins) >= maxLogins {
		s.sweep(now)
		// Still full: someone is flooding /login. Drop a pending login at
		// random (map order) rather than lock every admin out until
		// they expire.
		for id := range s.logins {
			if len(s.logins) < maxLogins {
				break
			}
			delete(s.logins, id)
		}
	}
	state := randomToken()
	s.logins[state] = l
	return state, true
}

// takeLogin returns and forgets the login of state (one use).
func (s *sessions) takeLogin(state string, now time.Time) (login, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logins[state]
	delete(s.logins, state)
	if !ok || !now.Before(l.expires) {
		return login{}, false
	}
	return l, true
}

func equalTokens(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

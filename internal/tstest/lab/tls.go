package lab

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/clearpath-vpn/clearpath/internal/tstest/testca"
)

// The lab's certificate authority: one private root per process (per test
// binary or demo run), so the product runs over HTTPS in the lab as it does
// in production. Parallel labs of one process share it.
var labCA struct {
	once sync.Once
	ca   *testca.CA
	file string
	err  error
}

// CA returns the lab's root and the path of its PEM file (what a client's
// --ca-file or SSL_CERT_FILE names). The file lives in the system's temp
// directory for the life of the process.
func CA() (*testca.CA, string, error) {
	labCA.once.Do(func() {
		labCA.ca, labCA.err = testca.New("ClearPath lab CA")
		if labCA.err != nil {
			return
		}
		labCA.file = filepath.Join(os.TempDir(), fmt.Sprintf("clearpath-lab-ca-%d.pem", os.Getpid()))
		labCA.err = os.WriteFile(labCA.file, labCA.ca.PEM, 0o644)
	})
	return labCA.ca, labCA.file, labCA.err
}

// tlsClientConfig trusts the lab's root (and nothing else), for HTTPClient.
func tlsClientConfig() *tls.Config {
	ca, _, err := CA()
	if err != nil {
		return nil
	}
	return &tls.Config{RootCAs: ca.Pool()}
}

// RemoveCAFile deletes the CA's PEM file if CA made one; for the end of a
// test binary's TestMain or of the demo.
func RemoveCAFile() {
	if labCA.file != "" {
		os.Remove(labCA.file)
	}
}

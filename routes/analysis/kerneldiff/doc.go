// Package kerneldiff checks a policy walk against the Linux kernel: it
// generates rule sets and routing tables from a seed, installs them with
// `ip` in a throwaway network namespace, reads them back with
// routes.NewSystemIn, and compares the walk's answer for many flows with
// `ip route get fibmatch DST [from SRC] [iif DEV] [mark M]`.
//
// It is test support (it needs root and creates namespaces through
// internal/netnstest); the tests that use it live beside the walks.
package kerneldiff

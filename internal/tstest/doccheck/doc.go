// Package doccheck keeps the repository's maps true: its tests fail when
// README.md's "Repository layout" or docs/ARCHITECTURE.md's package map
// misses a directory of the tree or names one that does not exist, or when
// ARCHITECTURE.md names a Go identifier no package declares.
package doccheck

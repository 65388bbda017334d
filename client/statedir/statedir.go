// Package statedir guards the client's state directory, where the root
// agent keeps its key, journal and log: root acts on it only when no other
// user can have planted anything in it (as sshd's StrictModes), and opens
// its files without following symlinks.
package statedir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Ensure creates dir (0700) when it is missing and, when running as root,
// checks it with Check.
func Ensure(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	return Check(dir)
}

// Check refuses a state dir that someone other than root could have
// written: dir must be a real directory (not a symlink) owned by root and
// not writable by group or others, and every directory above it must be
// owned by root and not writable by others unless sticky (as /tmp, where
// only an entry's owner may rename it). The error names the fix.
func Check(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("state dir %s is a symlink: root does not follow it; point --state-dir at the real directory (root-owned, mode 0700)", abs)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state dir %s is not a directory", abs)
	}
	if err := owned(abs, fi, false); err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("state dir %s: %w", abs, err)
		}
		if err := owned(p, fi, true); err != nil {
			return fmt.Errorf("state dir %s: parent %w", abs, err)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func owned(p string, fi fs.FileInfo, parent bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", p)
	}
	if st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not root: another user could plant files root then acts on; fix: sudo chown root:root %s && sudo chmod 0700 %s", p, st.Uid, p, p)
	}
	m := fi.Mode()
	if parent && m&fs.ModeSticky != 0 {
		return nil
	}
	if m.Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o): another user could plant files root then acts on; fix: sudo chmod go-w %s", p, m.Perm(), p)
	}
	return nil
}

// OpenFile opens name inside the (checked) state dir without following a
// symlink at name: O_NOFOLLOW makes the open fail with ELOOP instead.
func OpenFile(dir, name string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, name), flag|syscall.O_NOFOLLOW, perm)
}

// OpenPath is OpenFile for a full path whose directory was checked.
func OpenPath(path string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
}

// ReadFile reads path without following a symlink at its last element.
func ReadFile(path string) ([]byte, error) {
	f, err := OpenPath(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return io.ReadAll(f)
}

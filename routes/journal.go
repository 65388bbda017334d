package routes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// JournalVersion is written in every record; a journal of an unknown version
// is refused rather than guessed at.
const JournalVersion = 1

// Record is one journal line: the intent to make a change, written and
// fsynced before the change, or the note that it was done, after.
type Record struct {
	V      int       `json:"v"`
	Seq    int       `json:"seq"`
	Phase  string    `json:"phase"` // "intent" or "done"
	Change *Change   `json:"change,omitempty"`
	Time   time.Time `json:"time"`
}

// Journal is an append-only, fsynced file of Records.
type Journal struct {
	f   *os.File
	seq int
}

// OpenJournal opens the journal at path for appending, creating it (and
// fsyncing its directory, so the file survives power loss) if needed. A
// torn last line (a crash mid-write) is cut off first: appended to, it
// would become a damaged line in the middle that fails every later read.
func OpenJournal(path string) (*Journal, error) {
	data, err := readNoFollow(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	recs, err := DecodeJournal(data, path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if n := len(data); n > 0 && data[n-1] != '\n' {
		keep := int64(bytes.LastIndexByte(data, '\n') + 1)
		if err := f.Truncate(keep); err != nil {
			f.Close()
			return nil, fmt.Errorf("cut the torn last line of %s: %w", path, err)
		}
		slog.Warn("journal: cut a torn last record before appending", "file", path, "bytes", int64(n)-keep)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	j := &Journal{f: f}
	for _, r := range recs {
		j.seq = max(j.seq, r.Seq)
	}
	return j, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// append writes rs and fsyncs them.
func (j *Journal) append(rs ...Record) error { return j.write(true, rs...) }

// write writes rs, fsynced when sync. Only intents need the fsync: the
// rule is "journaled before made", and recovery undoes every intent,
// done or not, so a done record lost with the page cache (power loss,
// which takes the kernel's routes with it anyway) changes nothing; after
// a process crash the page cache still holds it.
func (j *Journal) write(sync bool, rs ...Record) error {
	var buf []byte
	now := time.Now().UTC()
	for _, r := range rs {
		r.V = JournalVersion
		r.Time = now
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		buf = append(append(buf, b...), '\n')
	}
	if _, err := j.f.Write(buf); err != nil {
		return fmt.Errorf("journal write: %w", err)
	}
	if !sync {
		return nil
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal sync: %w", err)
	}
	return nil
}

// Intents records that every change of cs is about to be made, with one
// fsync, and returns the first sequence number (the others follow).
// Recovery undoes every intent, done or not, so a batch is as safe as
// single records and costs one fsync instead of one per change.
func (j *Journal) Intents(cs []Change) (int, error) {
	first := j.seq + 1
	rs := make([]Record, len(cs))
	for i := range cs {
		j.seq++
		rs[i] = Record{Seq: j.seq, Phase: "intent", Change: &cs[i]}
	}
	return first, j.append(rs...)
}

// Dones records that the n changes from sequence first on were made
// (written, not fsynced: see write).
func (j *Journal) Dones(first, n int) error {
	rs := make([]Record, n)
	for i := range rs {
		rs[i] = Record{Seq: first + i, Phase: "done"}
	}
	return j.write(false, rs...)
}

// Intent records that c is about to be made and returns its sequence number.
func (j *Journal) Intent(c Change) (int, error) {
	j.seq++
	return j.seq, j.append(Record{Seq: j.seq, Phase: "intent", Change: &c})
}

// Done records that the change with sequence seq was made (written, not
// fsynced: see write).
func (j *Journal) Done(seq int) error { return j.write(false, Record{Seq: seq, Phase: "done"}) }

// Close closes the file.
func (j *Journal) Close() error { return j.f.Close() }

// ReadJournal reads every record at path. A torn last line (the machine lost
// power mid-write) is dropped with a warning; any other damage is an error
// naming the line, so recovery never acts on a guess.
func ReadJournal(path string) ([]Record, error) {
	data, err := readNoFollow(path)
	if err != nil {
		return nil, err
	}
	return DecodeJournal(data, path)
}

// DecodeJournal parses journal bytes; name is used in messages.
func DecodeJournal(data []byte, name string) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var r Record
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err := dec.Decode(&r)
		if err == nil {
			err = r.validate()
		}
		if err != nil {
			// Records are written whole with their newline; a last line
			// without one was cut short by a crash and never took effect.
			if isLastLine(data, line) && !bytes.HasSuffix(data, []byte("\n")) {
				slog.Warn("journal: ignoring torn last record", "file", name, "line", line)
				break
			}
			return nil, fmt.Errorf("journal %s line %d: %w", name, line, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("journal %s: %w", name, err)
	}
	return out, nil
}

func isLastLine(data []byte, line int) bool {
	return bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n"))+1 == line
}

func (r Record) validate() error {
	if r.V != JournalVersion {
		return fmt.Errorf("unknown journal version %d (this client knows %d)", r.V, JournalVersion)
	}
	switch r.Phase {
	case "intent":
		if r.Change == nil {
			return errors.New("intent without a change")
		}
		switch r.Change.Op {
		case OpAddRoute, OpDelRoute:
			if r.Change.Route == nil || !r.Change.Route.Dst.IsValid() {
				return fmt.Errorf("%s without a route destination", r.Change.Op)
			}
		case OpAddRule, OpDelRule:
			if r.Change.Rule == nil {
				return fmt.Errorf("%s without a rule", r.Change.Op)
			}
		case OpAddAddr, OpDelAddr:
			if r.Change.Addr == nil || r.Change.Addr.Device == "" || !r.Change.Addr.Prefix.IsValid() {
				return fmt.Errorf("%s without a device and an address", r.Change.Op)
			}
		case OpSetSysctl:
			if r.Change.Sysctl == nil || !ValidSysctl(r.Change.Sysctl.Name) {
				return fmt.Errorf("%s without a valid switch name under net/", r.Change.Op)
			}
		default:
			return fmt.Errorf("unknown change %q", r.Change.Op)
		}
	case "done":
	default:
		return fmt.Errorf("unknown phase %q", r.Phase)
	}
	if r.Seq <= 0 {
		return fmt.Errorf("bad sequence number %d", r.Seq)
	}
	return nil
}

// ValidSysctl reports whether name is a switch below /proc/sys/net that a
// System may write: "net/..." without "." or ".." elements.
func ValidSysctl(name string) bool {
	if !strings.HasPrefix(name, "net/") {
		return false
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return true
}

// readNoFollow reads path without following a symlink at its last element:
// the journal and snapshot are root's, in a directory only root writes.
func readNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

package config

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Friendlier input, applied before decoding: durations in days (a key_ttl
// of 30d reads as 720h; time.ParseDuration stops at hours), and the
// nearest field named for a typo'd one.

var durationType = reflect.TypeOf(time.Duration(0))

// daysRE is a duration that uses days: "90d", "1.5d", "1d12h", "-2d".
var daysRE = regexp.MustCompile(`^([-+]?)(\d+(?:\.\d+)?)d(.*)$`)

// expandDays rewrites, in data, every duration field's value written with
// days into hours, keeping every line where it was (errors name lines).
// Only fields of type time.Duration are touched: a group named "30d" stays.
func expandDays(data []byte) []byte {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return data // the decoder reports it
	}
	type edit struct {
		line, col int
		old, new  string
	}
	var edits []edit
	var walk func(n *yaml.Node, t reflect.Type)
	walk = func(n *yaml.Node, t reflect.Type) {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, t)
			}
		case yaml.MappingNode:
			if t.Kind() != reflect.Struct {
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				if f, ok := fieldByTag(t, n.Content[i].Value); ok {
					walk(n.Content[i+1], f.Type)
				}
			}
		case yaml.SequenceNode:
			if t.Kind() == reflect.Slice {
				for _, c := range n.Content {
					walk(c, t.Elem())
				}
			}
		case yaml.ScalarNode:
			if t != durationType {
				return
			}
			if h, ok := daysToHours(n.Value); ok {
				edits = append(edits, edit{n.Line, n.Column, n.Value, h})
			}
		}
	}
	walk(&root, reflect.TypeOf(Config{}))
	if len(edits) == 0 {
		return data
	}
	lines := strings.Split(string(data), "\n")
	// Right to left, so earlier columns on a line stay valid.
	for i := len(edits) - 1; i >= 0; i-- {
		e := edits[i]
		if e.line < 1 || e.line > len(lines) {
			continue
		}
		l := lines[e.line-1]
		at := e.col - 1
		if at < 0 || at > len(l) {
			continue
		}
		if j := strings.Index(l[at:], e.old); j >= 0 && j <= 1 { // 1: after a quote
			at += j
			lines[e.line-1] = l[:at] + e.new + l[at+len(e.old):]
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// daysToHours turns "90d" into "2160h" and "1d12h" into "24h12h" (which
// time.ParseDuration sums); ok is false for anything without days.
func daysToHours(s string) (string, bool) {
	m := daysRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", false
	}
	days, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return "", false
	}
	return m[1] + strconv.FormatFloat(days*24, 'f', -1, 64) + "h" + m[3], true
}

// ParseDuration is time.ParseDuration that also takes days ("90d",
// "1d12h"), as every duration in the configuration does.
func ParseDuration(s string) (time.Duration, error) {
	if h, ok := daysToHours(s); ok {
		s = h
	}
	return time.ParseDuration(s)
}

// fieldByTag finds t's field whose yaml name is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := strings.Split(f.Tag.Get("yaml"), ",")[0]; tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// typeAt is the Go type of the YAML path ("networks[1].listen_port"),
// nil when the path leaves the configuration's structs.
func typeAt(path string) reflect.Type {
	t := reflect.TypeOf(Config{})
	if path == "" {
		return t
	}
	for _, part := range strings.Split(path, ".") {
		name, idx, _ := strings.Cut(part, "[")
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := fieldByTag(t, name)
		if !ok {
			return nil
		}
		t = f.Type
		for ; idx != ""; _, idx, _ = strings.Cut(idx, "[") {
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// Fields lists the yaml names of the fields at path (a struct), in order.
func Fields(path string) []string {
	t := typeAt(path)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			names = append(names, tag)
		}
	}
	return names
}

// nearestField is the field at parent closest to the unknown name, "" when
// none is close enough to be the one meant.
func nearestField(parent, name string) string {
	best, bestD := "", 0
	for _, f := range Fields(parent) {
		d := editDistance(strings.ToLower(name), f)
		if best == "" || d < bestD {
			best, bestD = f, d
		}
	}
	// A slip of a key or two, or a third of a long name.
	if best == "" || bestD > max(2, len(best)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// validPort checks the port of a host:port listen address: a number in
// 1-65535 (net.SplitHostPort takes ":99999" and ":http").
func validPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

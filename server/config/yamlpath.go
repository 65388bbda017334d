package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// nameFields rewrites a YAML decoding error so that each problem names the
// field it is about ("networks[1].listen_port (line 30): cannot unmarshal
// !!str `abc` into int") instead of only a line number, which is all
// yaml.v3 reports; errors from value parsers (a bad CIDR) carry no line at
// all, so the offending scalar is found by its text.
func nameFields(data []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return fmt.Errorf("parse: %w", err)
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, msg := range te.Errors {
			errs = append(errs, errors.New(nameLine(&root, msg)))
		}
		return errors.Join(errs...)
	}
	msg := err.Error()
	var found []string
	walkScalars(&root, "", func(path string, n *yaml.Node) {
		if n.Value != "" && strings.Contains(msg, strconv.Quote(n.Value)) {
			found = append(found, fmt.Sprintf("%s (line %d)", path, n.Line))
		}
	})
	if len(found) > 0 {
		return fmt.Errorf("%s: %s", strings.Join(found, ", "), plainParseError(msg))
	}
	return fmt.Errorf("parse: %w", err)
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type`)

func nameLine(root *yaml.Node, msg string) string {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	if u := unknownFieldRE.FindStringSubmatch(rest); u != nil {
		path := ""
		walkKeys(root, "", func(p string, key *yaml.Node) {
			if key.Line == line && key.Value == u[1] {
				path = p
			}
		})
		if path == "" {
			path = u[1]
		}
		parent := ""
		if i := strings.LastIndex(path, "."); i >= 0 {
			parent = path[:i]
		}
		if near := nearestField(parent, u[1]); near != "" {
			return fmt.Sprintf("%s (line %d): unknown field; did you mean %s?", path, line, near)
		}
		return fmt.Sprintf("%s (line %d): unknown field (a typo? fields are listed by `vpn-gateway init`)", path, line)
	}
	path := ""
	walkScalars(root, "", func(p string, n *yaml.Node) {
		if n.Line == line && path == "" {
			path = p
		}
	})
	if path == "" {
		return msg
	}
	return fmt.Sprintf("%s (line %d): %s", path, line, rest)
}

// walkScalars calls fn for every scalar value with its dotted path.
func walkScalars(n *yaml.Node, path string, fn func(string, *yaml.Node)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkScalars(c, path, fn)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walkScalars(n.Content[i+1], join(path, n.Content[i].Value), fn)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walkScalars(c, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case yaml.ScalarNode:
		fn(path, n)
	}
}

// walkKeys calls fn for every mapping key with the path it names.
func walkKeys(n *yaml.Node, path string, fn func(string, *yaml.Node)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkKeys(c, path, fn)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			fn(p, n.Content[i])
			walkKeys(n.Content[i+1], p, fn)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walkKeys(c, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parseFuncRE matches a net/netip parser's error: `netip.ParsePrefix("x"): why`.
var parseFuncRE = regexp.MustCompile(`^(?:netip\.)?Parse(Prefix|Addr)\(("[^"]*")\): (?:ParseAddr\("[^"]*"\): )?(.*)$`)

// plainParseError says what a value parser's error means without naming
// Go functions: "10.0.0.0/33" is not a CIDR prefix (prefix length out of range).
func plainParseError(msg string) string {
	m := parseFuncRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	what := "a CIDR prefix such as 10.0.0.0/16"
	if m[1] == "Addr" {
		what = "an IP address"
	}
	return fmt.Sprintf("%s is not %s (%s)", m[2], what, m[3])
}

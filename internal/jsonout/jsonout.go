// Package jsonout writes the --json output of every ClearPath command in
// one shape: a JSON object whose first field is "schema", naming the
// format and its version ("clearpath.<name>/v<N>"); lists are an array
// under a named field, [] when empty, never null. docs/JSON.md lists the
// schemas. A version is raised only when a field changes meaning or goes
// away; new fields may appear within a version.
package jsonout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
)

// Schema returns the schema name of format name at version v.
func Schema(name string, v int) string { return fmt.Sprintf("clearpath.%s/v%d", name, v) }

// Write prints v, which must encode as a JSON object, indented, with
// "schema": schema as its first field (kept as it is when v carries its
// own schema field).
func Write(w io.Writer, schema string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '{' {
		return fmt.Errorf("jsonout: %T does not encode as an object", v)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	if _, has := fields["schema"]; !has {
		s, _ := json.Marshal(schema)
		head := append([]byte(`{"schema":`), s...)
		if len(fields) > 0 {
			head = append(head, ',')
		}
		b = append(head, b[1:]...)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// List prints items (a slice) as {"schema": schema, key: [...]}, with []
// for an empty or nil slice.
func List(w io.Writer, schema, key string, items any) error {
	rv := reflect.ValueOf(items)
	if rv.Kind() != reflect.Slice {
		return fmt.Errorf("jsonout: %T is not a slice", items)
	}
	if rv.IsNil() {
		items = reflect.MakeSlice(rv.Type(), 0, 0).Interface()
	}
	b, err := json.Marshal(items)
	if err != nil {
		return err
	}
	return Write(w, schema, map[string]json.RawMessage{key: b})
}

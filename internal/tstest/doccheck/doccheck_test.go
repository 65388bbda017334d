package doccheck

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// root is the module's root directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/clearpath-vpn/clearpath\n") {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("module root (go.mod of github.com/clearpath-vpn/clearpath) not found above the test")
		}
		dir = up
	}
}

// ignored are the top-level names .gitignore lists as directories (bin/).
func ignored(t *testing.T, root string) map[string]bool {
	out := map[string]bool{}
	b, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, "/") && !strings.Contains(strings.Trim(l, "/"), "/") {
			out[strings.Trim(l, "/")] = true
		}
	}
	return out
}

// subdirs lists the directories in dir (as paths from root), hidden and
// ignored ones left out.
func subdirs(t *testing.T, root, dir string, skip map[string]bool) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || skip[e.Name()] {
			continue
		}
		out = append(out, filepath.ToSlash(filepath.Join(dir, e.Name())))
	}
	return out
}

// section returns the lines of the markdown section headed heading (up to
// the next heading of the same or a higher level).
func section(t *testing.T, path, heading string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	level := strings.Index(heading, " ")
	var out []string
	in := false
	fence := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "```") {
			fence = !fence
		}
		if !fence && strings.HasPrefix(l, "#") {
			n := strings.Index(l, " ")
			if in && n > 0 && n <= level {
				break
			}
			if l == heading {
				in = true
				continue
			}
		}
		if in {
			out = append(out, l)
		}
	}
	if !in {
		t.Fatalf("%s has no section %q", path, heading)
	}
	return out
}

var pathToken = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$`)

// TestReadmeLayoutMatchesTree: the code block of README.md's "Repository
// layout" names every top-level directory, every directory in internal/ and
// in internal/tstest/, and names no path that does not exist. A path there
// is any word with a slash (cmd/vpn/, internal/tstest/lab/), written from
// the repository's root; a line's first word may also be a file (LICENSE).
func TestReadmeLayoutMatchesTree(t *testing.T) {
	root := root(t)
	lines := section(t, filepath.Join(root, "README.md"), "## Repository layout")
	named := map[string]bool{}
	inBlock := false
	for _, l := range lines {
		if strings.HasPrefix(l, "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock {
			continue
		}
		for i, w := range strings.Fields(l) {
			w = strings.TrimRight(strings.TrimLeft(w, "(`"), ",;:)`")
			if !pathToken.MatchString(w) || (!strings.Contains(w, "/") && !(i == 0 && !strings.HasPrefix(l, " "))) {
				continue
			}
			if strings.HasPrefix(w, "..") || strings.Contains(w, "//") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, w)); err != nil {
				t.Errorf("README.md's layout names %s, which does not exist in the tree", w)
				continue
			}
			named[strings.TrimSuffix(w, "/")] = true
		}
	}
	want := subdirs(t, root, ".", ignored(t, root))
	want = append(want, subdirs(t, root, "internal", nil)...)
	want = append(want, subdirs(t, root, "internal/tstest", nil)...)
	for _, d := range want {
		d = strings.TrimPrefix(d, "./")
		if !named[d] {
			t.Errorf("README.md's layout does not name %s/: add a line for it", d)
		}
	}
}

// packageDirs lists the directories holding Go files of this module (as
// `go list ./...` sees them: no testdata, no nested modules).
func packageDirs(t *testing.T, root string) []string {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || ignored(t, root)[rel]) {
				return filepath.SkipDir
			}
			if rel != "." {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && rel != "." {
			seen[filepath.ToSlash(filepath.Dir(rel))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// TestArchitecturePackageMap: docs/ARCHITECTURE.md's package map has one
// row for every package directory of the module, and no row for a
// directory that does not exist.
func TestArchitecturePackageMap(t *testing.T) {
	root := root(t)
	rows := map[string]bool{}
	cell := regexp.MustCompile("^\\| `([^`]+)` \\|")
	for _, l := range section(t, filepath.Join(root, "docs", "ARCHITECTURE.md"), "## Package map") {
		m := cell.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		p := strings.TrimSuffix(m[1], "/")
		if rows[p] {
			t.Errorf("ARCHITECTURE.md's package map lists %s twice", p)
		}
		rows[p] = true
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || !fi.IsDir() {
			t.Errorf("ARCHITECTURE.md's package map lists %s, which is not a directory of the tree", p)
		}
	}
	for _, d := range packageDirs(t, root) {
		if !rows[d] {
			t.Errorf("ARCHITECTURE.md's package map has no row for the package %s: add \"| `%s/` | product or harness | what it is |\"", d, d)
		}
	}
}

// decls are the names the module's packages declare: by package name its
// top-level names, and by type name its methods and fields.
type decls struct {
	pkg     map[string]map[string]bool
	members map[string]map[string]bool
}

func declared(t *testing.T, root string) decls {
	t.Helper()
	d := decls{pkg: map[string]map[string]bool{}, members: map[string]map[string]bool{}}
	add := func(m map[string]map[string]bool, k, v string) {
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][v] = true
	}
	fset := token.NewFileSet()
	for _, dir := range packageDirs(t, root) {
		ents, _ := os.ReadDir(filepath.Join(root, dir))
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(root, dir, e.Name()), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			pkg := f.Name.Name
			add(d.pkg, "*", pkg)
			for _, decl := range f.Decls {
				switch x := decl.(type) {
				case *ast.FuncDecl:
					if x.Recv == nil {
						add(d.pkg, pkg, x.Name.Name)
						continue
					}
					typ := x.Recv.List[0].Type
					if s, ok := typ.(*ast.StarExpr); ok {
						typ = s.X
					}
					if ix, ok := typ.(*ast.IndexExpr); ok {
						typ = ix.X
					}
					if id, ok := typ.(*ast.Ident); ok {
						add(d.members, id.Name, x.Name.Name)
					}
				case *ast.GenDecl:
					for _, s := range x.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							add(d.pkg, pkg, s.Name.Name)
							add(d.members, "*", s.Name.Name)
							st, ok := s.Type.(*ast.StructType)
							if !ok {
								continue
							}
							for _, fl := range st.Fields.List {
								for _, n := range fl.Names {
									add(d.members, s.Name.Name, n.Name)
								}
								if len(fl.Names) == 0 { // embedded
									typ := fl.Type
									if s, ok := typ.(*ast.StarExpr); ok {
										typ = s.X
									}
									if sel, ok := typ.(*ast.SelectorExpr); ok {
										add(d.members, s.Name.Name, sel.Sel.Name)
									} else if id, ok := typ.(*ast.Ident); ok {
										add(d.members, s.Name.Name, id.Name)
									}
								}
							}
						case *ast.ValueSpec:
							for _, n := range s.Names {
								add(d.pkg, pkg, n.Name)
							}
						}
					}
				}
			}
		}
	}
	return d
}

// external are the packages from outside this module whose names the
// document may use (http.Server, tls.Config...).
var external = map[string]bool{"errors": true, "http": true, "template": true, "time": true, "unicode": true, "tls": true, "os": true, "slog": true}

// TestArchitectureNamesExist: every `pkg.Name` and `Type.Member` in code
// spans of docs/ARCHITECTURE.md is declared by the module (a package of
// that name declares Name; a type Type has the method or field Member), so
// the document never names a type or function that is gone.
func TestArchitectureNamesExist(t *testing.T) {
	root := root(t)
	b, err := os.ReadFile(filepath.Join(root, "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	d := declared(t, root)
	span := regexp.MustCompile("`([^`\n]+)`")
	ref := regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])([A-Za-z][A-Za-z0-9_]*)\.([A-Z][A-Za-z0-9_]*)`)
	checked := 0
	var bad []string
	for _, s := range span.FindAllStringSubmatch(string(b), -1) {
		for _, m := range ref.FindAllStringSubmatch(s[1], -1) {
			left, right := m[1], m[2]
			switch {
			case d.pkg["*"][left]:
				checked++
				if !d.pkg[left][right] {
					bad = append(bad, left+"."+right+" (package "+left+" declares no "+right+")")
				}
			case d.members["*"][left]:
				checked++
				if !d.members[left][right] {
					bad = append(bad, left+"."+right+" (type "+left+" has no method or field "+right+")")
				}
			case left[0] >= 'a' && left[0] <= 'z' && !external[left]:
				bad = append(bad, left+"."+right+" (no package of this module is named "+left+"; an outside package goes in the test's external list)")
			}
		}
	}
	slices.Sort(bad)
	for _, x := range slices.Compact(bad) {
		t.Errorf("docs/ARCHITECTURE.md names %s", x)
	}
	if checked < 20 {
		t.Errorf("only %d Go names checked in docs/ARCHITECTURE.md: the pattern no longer finds them", checked)
	}
}

package layout

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/regentdb/regent/"

// imports lists, for each package of the project (its directory from the
// module root), the project packages it may import from its non-test files:
// the arrows of README "Layout". A package missing here fails the test, so a
// new one is placed on purpose. The integration packages (end-to-end tests
// and their helpers) may import anything but the binaries.
var imports = map[string][]string{
	"vocab":     {},        // the words the others share
	"failover":  {"vocab"}, // the functional core (TestCoreStaysPure checks the rest)
	"topology":  {},        // MySQL, not Raft
	"consensus": {"identity", "vocab"},
	"proxyhook": {},
	"api":       {},
	"identity":  {},
	"apiserver": {"api", "identity"},
	"config":    {"apiserver", "consensus", "failover", "identity", "proxyhook"}, // each part in its package's type
	"agent":     {"api", "apiserver", "config", "consensus", "failover", "identity", "proxyhook", "topology", "vocab"},

	"cmd/regent":    {"agent", "api", "apiserver", "config", "consensus", "failover", "identity", "internal/buildinfo", "proxyhook", "topology", "vocab"},
	"cmd/regentctl": {"api", "internal/buildinfo"},

	// The binaries' version (the standard library only).
	"internal/buildinfo": {},

	// Test helpers, imported only by tests.
	"topology/mysqltest":      {},
	"topology/mysqlsim":       {}, // the emulated fleet (issue 15)
	"proxyhook/haproxytest":   {"internal/freeport"},
	"proxyhook/proxysqltest":  {},
	"apiserver/apiservertest": {"api", "apiserver"},
	"internal/freeport":       {},
	"internal/layout":         {},
}

// forbidden lists outside modules a package must not import: Raft stays in
// consensus, MySQL in topology (and proxyhook's ProxySQL admin client).
var forbidden = map[string][]string{
	"topology":  {"github.com/hashicorp/raft"},
	"consensus": {"github.com/go-sql-driver/mysql", "github.com/go-mysql-org/go-mysql"},
	"proxyhook": {"github.com/hashicorp/raft"},
	"api":       {"github.com/hashicorp/raft", "github.com/go-sql-driver/mysql"},
}

func TestImportsFollowTheLayout(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module root is not two levels up: %v", err)
	}
	pkgs := map[string]map[string]string{} // package → import → the file that imports it
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if pkgs[pkg] == nil {
			pkgs[pkg] = map[string]string{}
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			pkgs[pkg][p] = filepath.Base(path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < len(imports) {
		t.Fatalf("found %d packages under %s, fewer than the %d the layout names", len(pkgs), root, len(imports))
	}
	for pkg, imps := range pkgs {
		integration := pkg == "integration" || strings.HasPrefix(pkg, "integration/")
		allowed, known := imports[pkg]
		if !known && !integration {
			t.Errorf("package %s is not in the layout: add it to README \"Layout\" and to this test's table", pkg)
			continue
		}
		for imp, file := range imps {
			for _, bad := range forbidden[pkg] {
				if imp == bad || strings.HasPrefix(imp, bad+"/") {
					t.Errorf("%s/%s imports %s: README \"Layout\" keeps it out of %s", pkg, file, imp, pkg)
				}
			}
			own, ok := strings.CutPrefix(imp, module)
			switch {
			case !ok:
			case integration && strings.HasPrefix(own, "cmd/"):
				t.Errorf("%s/%s imports %s: tests run the binaries, they do not import them", pkg, file, own)
			case !integration && !slices.Contains(allowed, own):
				t.Errorf("%s/%s imports %s: against README \"Layout\" (%s may import %v)", pkg, file, own, pkg, allowed)
			}
		}
	}
}

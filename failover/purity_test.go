package failover

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCoreStaysPure guards the dependency rule (README "Layout") and the
// functional core (the package doc's section A functional core): the
// package's own files import none of Regent's other packages nor anything
// that does I/O, read no clock, sleep nowhere and start no goroutine.
func TestCoreStaysPure(t *testing.T) {
	allowed := map[string]bool{"github.com/regentdb/regent/vocab": true, "context": true, "errors": true, "fmt": true, "maps": true, "slices": true, "sort": true, "strings": true, "time": true}
	forbiddenTime := map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true, "Tick": true, "NewTimer": true, "NewTicker": true, "AfterFunc": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		// The runner (runner*.go) is the shell: it logs, but like the core
		// it reads the clock only through Clock and starts no goroutine.
		shell := strings.HasPrefix(name, "runner")
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[path] && !(shell && path == "log/slog") {
				t.Errorf("%s imports %q: the core may only use %v (failover never imports topology, consensus or proxyhook: they are adapted to its interfaces)", name, path, allowed)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: a goroutine at %s: the core starts none", name, fset.Position(x.Pos()))
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" && forbiddenTime[sel.Sel.Name] {
						t.Errorf("%s: time.%s at %s: the core reads no clock; Now is in the View", name, sel.Sel.Name, fset.Position(x.Pos()))
					}
				}
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("only %d files checked: is the test running in the package directory?", checked)
	}
}

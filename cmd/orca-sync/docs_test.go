package main

// Docs that cannot rot: the examples, the CLI reference, the package graph and
// the links of docs/ and README.md are checked against the code. The
// conventions these tests read are described at the top of docs/README.md.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orca-sync/orca-sync/config"
)

// moduleRoot is the directory of go.mod above the test's working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = filepath.Dir(dir)
	}
}

// docFile is one markdown file of the repository, by its path from the root.
type docFile struct {
	rel   string
	lines []string
}

// docFiles returns README.md and every .md file under docs/.
func docFiles(t *testing.T, root string) []docFile {
	t.Helper()
	paths := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatalf("walk docs/: %v", err)
	}
	var files []docFile
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, docFile{rel: filepath.ToSlash(rel), lines: strings.Split(string(b), "\n")})
	}
	return files
}

// example is a ```toml block marked as a complete file.
type example struct {
	file string // the doc file
	line int    // 1-based line of the block's first TOML line
	kind string // "service" or "cluster"
	// project is the directory the service example is loaded as; same, when
	// set, is a repository file the block must equal.
	project, same string
	body          string
}

var exampleMarkerRE = regexp.MustCompile(`^<!-- example: (service|cluster)((?: [a-z]+=[^ ]+)*) -->$`)

// examples finds every marked block. A marker not followed by a ```toml
// block is an error, so that a marker cannot be dropped off silently.
func examples(t *testing.T, files []docFile) []example {
	t.Helper()
	var out []example
	for _, f := range files {
		for i := 0; i < len(f.lines); i++ {
			m := exampleMarkerRE.FindStringSubmatch(strings.TrimSpace(f.lines[i]))
			if m == nil {
				if strings.HasPrefix(strings.TrimSpace(f.lines[i]), "<!-- example:") {
					t.Errorf("%s:%d: malformed example marker %q", f.rel, i+1, f.lines[i])
				}
				continue
			}
			ex := example{file: f.rel, line: i + 3, kind: m[1], project: "example"}
			for _, kv := range strings.Fields(m[2]) {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "project":
					ex.project = v
				case "file":
					ex.same = v
				default:
					t.Errorf("%s:%d: unknown example attribute %q", f.rel, i+1, k)
				}
			}
			if i+1 >= len(f.lines) || strings.TrimSpace(f.lines[i+1]) != "```toml" {
				t.Errorf("%s:%d: an example marker must be followed by a ```toml block", f.rel, i+1)
				continue
			}
			var body []string
			j := i + 2
			for ; j < len(f.lines) && strings.TrimSpace(f.lines[j]) != "```"; j++ {
				body = append(body, f.lines[j])
			}
			if j == len(f.lines) {
				t.Errorf("%s:%d: the example's ```toml block is not closed", f.rel, i+2)
			}
			ex.body = strings.Join(body, "\n") + "\n"
			out = append(out, ex)
			i = j
		}
	}
	return out
}

// TestDocsExamplesLoad runs the real loader on every complete example of
// README.md and docs/: a service.toml in an infra tree of its own (config.Load,
// so mounts and depends_on are checked as a checkout's are), a cluster.toml by
// config.ParseClusterFile. Errors name the doc file and line.
func TestDocsExamplesLoad(t *testing.T) {
	root := moduleRoot(t)
	exs := examples(t, docFiles(t, root))
	count := map[string]int{}
	for _, ex := range exs {
		count[ex.kind]++
		var errs config.Errors
		switch ex.kind {
		case "service":
			errs = loadServiceExample(t, ex)
		case "cluster":
			_, errs = config.ParseClusterFile("cluster.toml", []byte(ex.body))
		}
		for _, e := range errs {
			line := ex.line
			if e.Line > 0 {
				line += e.Line - 1
			}
			t.Errorf("%s:%d: %s example does not load: %s", ex.file, line, ex.kind, e.Error())
		}
		if ex.same != "" {
			want, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(ex.same)))
			if err != nil {
				t.Errorf("%s:%d: example names file=%s: %v", ex.file, ex.line, ex.same, err)
			} else if string(want) != ex.body {
				t.Errorf("%s:%d: the example differs from %s; copy the file into the doc again", ex.file, ex.line, ex.same)
			}
		}
	}
	// The docs promise at least these; a test that found none would pass on nothing.
	if count["service"] < 2 || count["cluster"] < 1 {
		t.Errorf("found %d service and %d cluster examples; want at least 2 and 1", count["service"], count["cluster"])
	}
}

// loadServiceExample writes the example as services/<project>/service.toml
// of a fresh tree, with an empty file at every ./ mount source (a doc cannot
// carry them), and loads the tree.
func loadServiceExample(t *testing.T, ex example) config.Errors {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "services", ex.project, "service.toml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(ex.body), 0o644); err != nil {
		t.Fatal(err)
	}
	services, _ := config.ParseServiceFile("services/"+ex.project+"/service.toml", ex.project, []byte(ex.body))
	for _, s := range services {
		for _, m := range s.Mounts {
			if !strings.HasPrefix(m.Source, "./") || strings.Contains(m.Source, "..") {
				continue
			}
			src := filepath.Join(dir, filepath.FromSlash(m.Source))
			if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(src, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err := config.Load(dir)
	var errs config.Errors
	if err != nil && !errors.As(err, &errs) {
		t.Fatalf("%s:%d: load: %v", ex.file, ex.line, err)
	}
	return errs
}

// documentedFlag is one flag row of docs/reference/cli.md.
type documentedFlag struct {
	line      int
	shorthand string
	// def is the default column when it is one `code span`, else "" and
	// unchecked (prose such as a default that depends on the user).
	def    string
	hasDef bool
}

var (
	cliHeadingRE  = regexp.MustCompile(`^### (orca-sync(?: [a-z-]+)*)\s*$`)
	cliLongFlagRE = regexp.MustCompile("`--([a-z0-9-]+)`")
	cliShortRE    = regexp.MustCompile("`-([a-zA-Z])`")
	cliCodeCellRE = regexp.MustCompile("^`([^`]*)`$")
)

// parseCLIDoc reads cli.md's layout: one `### orca-sync <command>` heading per
// command, and in its section a table whose first column names a flag as
// `--flag` (and its shorthand as `-f`) and whose second column is its default.
func parseCLIDoc(t *testing.T, path string) map[string]map[string]documentedFlag {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs := map[string]map[string]documentedFlag{}
	current := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := cliHeadingRE.FindStringSubmatch(line); m != nil {
			current = m[1]
			if docs[current] != nil {
				t.Errorf("cli.md:%d: %q is documented twice", n, current)
			}
			docs[current] = map[string]documentedFlag{}
			continue
		}
		if strings.HasPrefix(line, "#") {
			current = ""
			continue
		}
		if current == "" || !strings.HasPrefix(line, "| `-") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			t.Errorf("cli.md:%d: a flag row needs the columns flag | default | meaning", n)
			continue
		}
		long := cliLongFlagRE.FindStringSubmatch(cells[1])
		if long == nil {
			t.Errorf("cli.md:%d: no `--flag` in the first column", n)
			continue
		}
		df := documentedFlag{line: n}
		if s := cliShortRE.FindStringSubmatch(cells[1]); s != nil {
			df.shorthand = s[1]
		}
		if m := cliCodeCellRE.FindStringSubmatch(strings.TrimSpace(cells[2])); m != nil {
			df.def, df.hasDef = m[1], true
		}
		docs[current][long[1]] = df
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return docs
}

// realCommands walks the command tree main builds, by command path. Cobra's
// own help and completion commands and --help flags are not ours to document.
func realCommands(root *cobra.Command) map[string]*cobra.Command {
	out := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			out[sub.CommandPath()] = sub
			walk(sub)
		}
	}
	walk(root)
	return out
}

// TestDocsCLIMatchesCommands checks docs/reference/cli.md against the real
// command tree both ways: every documented command and flag exists (with the
// documented shorthand and default), and every real one is documented.
func TestDocsCLIMatchesCommands(t *testing.T) {
	docs := parseCLIDoc(t, filepath.Join(moduleRoot(t), "docs", "reference", "cli.md"))
	real := realCommands(newRootCommand(io.Discard, io.Discard))
	for path, cmd := range real {
		flags, ok := docs[path]
		if !ok {
			t.Errorf("cli.md: command %q is not documented (add a `### %s` section)", path, path)
			continue
		}
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			df, ok := flags[f.Name]
			if !ok {
				t.Errorf("cli.md: %s --%s is not documented", path, f.Name)
				return
			}
			if df.shorthand != f.Shorthand {
				t.Errorf("cli.md:%d: %s --%s: documented shorthand %q, real %q", df.line, path, f.Name, df.shorthand, f.Shorthand)
			}
			if df.hasDef && !sameDefault(f, df.def) {
				t.Errorf("cli.md:%d: %s --%s: documented default %q, real %q", df.line, path, f.Name, df.def, f.DefValue)
			}
		})
	}
	for path, flags := range docs {
		cmd, ok := real[path]
		if !ok {
			t.Errorf("cli.md: documents %q, which is not a command of orca-sync", path)
			continue
		}
		for name, df := range flags {
			if cmd.LocalFlags().Lookup(name) == nil {
				t.Errorf("cli.md:%d: documents %s --%s, which %s does not have", df.line, path, name, path)
			}
		}
	}
}

func sameDefault(f *pflag.Flag, documented string) bool {
	if f.Value.Type() == "duration" {
		a, errA := time.ParseDuration(documented)
		b, errB := time.ParseDuration(f.DefValue)
		return errA == nil && errB == nil && a == b
	}
	return documented == f.DefValue
}

// TestDocsDepsMatchImports checks the ```deps block of docs/design.md against
// the module's real import graph (non-test imports of this module only, e2e
// left out), and that the package picture above it draws every package once
// with every import pointing to a lower row.
func TestDocsDepsMatchImports(t *testing.T) {
	root := moduleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	documented := parseDeps(t, fencedBlock(t, doc, "```deps"))
	real := importGraph(t, root)
	for pkg, deps := range real {
		got, ok := documented[pkg]
		if !ok {
			t.Errorf("design.md deps: package %s is missing; add `%s -> %s`", pkg, pkg, strings.Join(deps, " "))
		} else if !slices.Equal(got, deps) {
			t.Errorf("design.md deps: %s -> %s, but go list says %s -> %s", pkg, strings.Join(got, " "), pkg, strings.Join(deps, " "))
		}
	}
	for pkg := range documented {
		if _, ok := real[pkg]; !ok {
			t.Errorf("design.md deps: %s is not a package of the module", pkg)
		}
	}
	checkPicture(t, fencedBlock(t, doc, "<!-- picture: packages -->\n```text"), real)
}

// fencedBlock returns the lines inside the first fenced block opened by start.
func fencedBlock(t *testing.T, doc, start string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, start+"\n")
	if !ok {
		t.Fatalf("design.md has no block opened by %q", start)
	}
	body, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("design.md: the block opened by %q is not closed", start)
	}
	return strings.Split(body, "\n")
}

func parseDeps(t *testing.T, lines []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		pkg, deps, ok := strings.Cut(l, "->")
		if !ok {
			t.Errorf("design.md deps: %q is not `pkg -> dep ...`", l)
			continue
		}
		out[strings.TrimSpace(pkg)] = strings.Fields(deps)
	}
	return out
}

// importGraph runs go list in the module root: package -> sorted
// module-relative imports of this module.
func importGraph(t *testing.T, root string) map[string][]string {
	t.Helper()
	goList := func(args ...string) string {
		cmd := exec.Command("go", append([]string{"list"}, args...)...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	module := strings.TrimSpace(goList("-m"))
	graph := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(goList("-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")), "\n") {
		fields := strings.Fields(l)
		pkg := strings.TrimPrefix(fields[0], module+"/")
		if pkg == "e2e" || strings.HasPrefix(pkg, "e2e/") {
			continue
		}
		deps := []string{}
		for _, imp := range fields[1:] {
			if rel, ok := strings.CutPrefix(imp, module+"/"); ok {
				deps = append(deps, rel)
			}
		}
		sort.Strings(deps)
		graph[pkg] = deps
	}
	return graph
}

var pictureTokenRE = regexp.MustCompile(`[a-z0-9][a-z0-9/_-]*`)

// checkPicture requires every package on exactly one row of the picture and
// every import drawn downwards: a package's imports sit on lower rows.
func checkPicture(t *testing.T, lines []string, graph map[string][]string) {
	t.Helper()
	row := map[string]int{}
	for i, l := range lines {
		for _, tok := range pictureTokenRE.FindAllString(l, -1) {
			if _, isPkg := graph[tok]; !isPkg {
				continue
			}
			if r, seen := row[tok]; seen {
				t.Errorf("design.md picture: %s is drawn twice (lines %d and %d of the picture)", tok, r+1, i+1)
			}
			row[tok] = i
		}
	}
	for pkg, deps := range graph {
		r, ok := row[pkg]
		if !ok {
			t.Errorf("design.md picture: package %s is not drawn", pkg)
			continue
		}
		for _, d := range deps {
			if dr, ok := row[d]; ok && dr <= r {
				t.Errorf("design.md picture: %s imports %s, which must be drawn on a lower row", pkg, d)
			}
		}
	}
}

var mdLinkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsLinksStayInRepo checks that every markdown link of README.md and
// docs/ is relative, stays inside the repository and names a file that exists.
func TestDocsLinksStayInRepo(t *testing.T) {
	root := moduleRoot(t)
	for _, f := range docFiles(t, root) {
		for i, l := range f.lines {
			for _, m := range mdLinkRE.FindAllStringSubmatch(l, -1) {
				target, _, _ := strings.Cut(m[1], "#")
				where := fmt.Sprintf("%s:%d: link %s", f.rel, i+1, m[1])
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					t.Errorf("%s leaves the repository", where)
					continue
				}
				if target == "" {
					continue // an anchor of the same page
				}
				abs := filepath.Join(root, filepath.Dir(filepath.FromSlash(f.rel)), filepath.FromSlash(target))
				if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
					t.Errorf("%s points outside the repository", where)
				} else if _, err := os.Stat(abs); err != nil {
					t.Errorf("%s: no such file", where)
				}
			}
		}
	}
}

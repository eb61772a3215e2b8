package docs

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/reference/flags.md from the binaries' --help output")

// binaries are the commands whose flags the reference documents, by name,
// with their package relative to the repository root.
var binaries = []struct{ name, pkg string }{
	{"weft-control-plane", "./control-plane/cmd/weft-control-plane"},
	{"weft-node-proxy", "./node-proxy/cmd/weft-node-proxy"},
	{"weft-cni", "./node-proxy/cmd/weft-cni"},
	{"weftctl", "./weftctl"},
}

var (
	binDir   string // set by TestMain; the binaries are built into it on first use
	buildMu  sync.Mutex
	buildErr error
	built    bool
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "weft-docs-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "docs: temp dir:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the repository's root directory (two levels above this
// package).
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// buildBinaries builds every binary in binaries into binDir, once per test
// binary, and returns binDir.
func buildBinaries(t testing.TB) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if !built {
		built = true
		args := []string{"build", "-o", binDir + string(filepath.Separator)}
		for _, b := range binaries {
			args = append(args, b.pkg)
		}
		cmd := exec.Command(goTool(), args...)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// goTool is the go command of the toolchain running the test.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runBinary runs a built binary with args in a fixed, minimal environment,
// so that no default taken from the environment (NODE_NAME, POD_NAME,
// POD_NAMESPACE, KUBECONFIG, CNI_COMMAND) or the machine leaks into the
// output. argv[0] is the bare name, never the temporary path. It returns
// stdout and stderr together, and the exit code.
func runBinary(t testing.TB, name string, args ...string) (string, int) {
	t.Helper()
	dir := buildBinaries(t)
	out, code, err := execBinary(dir, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out, code
}

// execBinary is runBinary for binaries already built into dir; it may be
// called from several goroutines.
func execBinary(dir, name string, args ...string) (string, int, error) {
	cmd := exec.Command(filepath.Join(dir, name))
	cmd.Args = append([]string{name}, args...)
	cmd.Dir = os.TempDir()
	cmd.Env = []string{"HOME=/nonexistent", "PATH=/usr/bin:/bin", "LC_ALL=C", "TERM=dumb"}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			return "", 0, fmt.Errorf("run %s %s: %v", name, strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return strings.ReplaceAll(out.String(), dir+string(filepath.Separator), ""), code, nil
}

// markdownFiles returns README.md and every docs/**/*.md, relative to the
// repository root, in lexical order.
func markdownFiles(t testing.TB) []string {
	t.Helper()
	root := repoRoot(t)
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files[1:])
	return files
}

func readFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

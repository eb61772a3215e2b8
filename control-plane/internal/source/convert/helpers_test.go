package convert

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"
)

// decode reads one object from YAML, strictly, as the dir source does.
func decode[T any](t *testing.T, src string) *T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict([]byte(src), &v); err != nil {
		t.Fatalf("decode test object: %v\n%s", err, src)
	}
	return &v
}

// diff compares model values; nil and empty slices and maps are equal.
func diff(got, want any) string { return cmp.Diff(want, got, cmpopts.EquateEmpty()) }

// wantInvalid checks that err is an *InvalidError whose text contains every
// fragment of want.
func wantInvalid(t *testing.T, err error, want ...string) {
	t.Helper()
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("error = %v, want an *InvalidError", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

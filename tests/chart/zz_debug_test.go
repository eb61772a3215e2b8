package chart

import "testing"

func TestZZDebug(t *testing.T) {
	for _, k := range readValueKeys(t) {
		t.Logf("%-45s doc=%v cov=%v parent=%v", k.path, k.documented, k.covered, k.parent)
	}
}

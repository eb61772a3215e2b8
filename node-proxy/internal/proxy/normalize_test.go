package proxy

import "testing"

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{
		"/public/x":        "/public/x",
		"/./admin":         "/admin",
		"//admin":          "/admin",
		"/%61dmin":         "/admin",
		"/public/../admin": "/admin",
		"/a/b/":            "/a/b/",
		"/a/./b/":          "/a/b/",
		"/%2F":             "/%2F", // reserved: left encoded
		"*":                "*",
		"/%zz":             "/%zz",
		"/..":              "/",
	} {
		if got := normalizePath(in); got != want {
			t.Errorf("normalizePath(%q) = %q; want %q", in, got, want)
		}
	}
}

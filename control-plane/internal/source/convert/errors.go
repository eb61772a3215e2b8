package convert

import (
	"fmt"
	"strings"
	"time"
)

// InvalidError reports an object with content its schema would reject.
type InvalidError struct {
	Kind      string // e.g. "HTTPRoute"
	Namespace string // "" for cluster-scoped objects
	Name      string
	Fields    []FieldError
}

// FieldError is one invalid field.
type FieldError struct {
	Path   string // JSON path from the object root, e.g. "spec.rules[0].timeouts.request"
	Detail string
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind)
	b.WriteByte(' ')
	if e.Namespace != "" {
		b.WriteString(e.Namespace)
		b.WriteByte('/')
	}
	b.WriteString(e.Name)
	b.WriteString(": ")
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Path)
		b.WriteString(": ")
		b.WriteString(f.Detail)
	}
	return b.String()
}

// checker collects the field errors of one object.
type checker struct {
	kind, namespace, name string
	fields                []FieldError
}

func newChecker(kind, namespace, name string) *checker {
	return &checker{kind: kind, namespace: namespace, name: name}
}

func (c *checker) addf(path, format string, args ...any) {
	c.fields = append(c.fields, FieldError{Path: path, Detail: fmt.Sprintf(format, args...)})
}

// err returns nil when no field was at fault.
func (c *checker) err() error {
	if len(c.fields) == 0 {
		return nil
	}
	return &InvalidError{Kind: c.kind, Namespace: c.namespace, Name: c.name, Fields: c.fields}
}

// duration parses an optional Gateway API duration; nil is 0.
func (c *checker) duration(path string, s *string) time.Duration {
	if s == nil {
		return 0
	}
	d, err := ParseDuration(*s)
	if err != nil {
		c.addf(path, "%v", err)
	}
	return d
}

// intRange checks min <= v <= max.
func (c *checker) intRange(path string, v, lo, hi int64) {
	if v < lo || v > hi {
		c.addf(path, "%d is out of range, want %d to %d", v, lo, hi)
	}
}

// maxItems checks a list's length.
func (c *checker) maxItems(path string, n, most int) {
	if n > most {
		c.addf(path, "%d items, at most %d are allowed", n, most)
	}
}

// required checks that a string field is set.
func (c *checker) required(path, v string) {
	if v == "" {
		c.addf(path, "required")
	}
}

func idx(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

package convert

import (
	"fmt"
	"strconv"
	"time"
)

// ParseDuration parses a Gateway API duration (GEP-2257), the format of
// every duration field in HTTPRoute and in weftmesh.io policies: one to four
// pairs of a number of one to five digits and a unit, h, m, s or ms, with
// nothing in between, such as "500ms", "10s" or "1h30m". It accepts exactly
// what the schema pattern ^([0-9]{1,5}(h|m|s|ms)){1,4}$ accepts; "0s" is
// zero.
func ParseDuration(s string) (time.Duration, error) {
	bad := func(reason string) (time.Duration, error) {
		return 0, fmt.Errorf("invalid duration %q: %s; want 1 to 4 number+unit pairs, units h, m, s or ms (e.g. 500ms, 1m30s)", s, reason)
	}
	if s == "" {
		return bad("empty")
	}
	var total time.Duration
	pairs := 0
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		switch {
		case j == i:
			return bad(fmt.Sprintf("expected a number at %q", s[i:]))
		case j-i > 5:
			return bad("a number has more than 5 digits")
		case j == len(s):
			return bad("the last number has no unit")
		}
		n, _ := strconv.Atoi(s[i:j]) // at most 5 digits: cannot fail
		var unit time.Duration
		switch {
		case s[j] == 'm' && j+1 < len(s) && s[j+1] == 's':
			unit, j = time.Millisecond, j+2
		case s[j] == 'h':
			unit, j = time.Hour, j+1
		case s[j] == 'm':
			unit, j = time.Minute, j+1
		case s[j] == 's':
			unit, j = time.Second, j+1
		default:
			return bad(fmt.Sprintf("unknown unit at %q", s[j:]))
		}
		if pairs++; pairs > 4 {
			return bad("more than 4 number+unit pairs")
		}
		total += time.Duration(n) * unit
		i = j
	}
	return total, nil
}

//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// RunningNodes lists the simulated nodes of the running sandbox name (its
// NAME-n<i> network namespaces), in node order; none when it is not up.
func RunningNodes(name string) ([]string, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("sandbox name %q: want 1 to 12 lowercase letters and digits, starting with a letter", name)
	}
	all, err := ownedNamespaces(name)
	if err != nil {
		return nil, err
	}
	node := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-n([0-9]+)$`)
	byIndex := map[int]string{}
	maxIndex := -1
	for _, ns := range all {
		m := node.FindStringSubmatch(ns)
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		byIndex[i] = ns
		maxIndex = max(maxIndex, i)
	}
	var out []string
	for i := 0; i <= maxIndex; i++ {
		if n, ok := byIndex[i]; ok {
			out = append(out, n)
		}
	}
	return out, nil
}

// AdminGet GETs url from inside node's network namespace (node as
// RunningNodes names it): the node proxy's admin port is
// http://127.0.0.1:15000, and node 0 also runs the control plane, whose
// admin address is ControlPlaneAdmin. A status other than 200 is an error.
func AdminGet(ctx context.Context, node, url string) ([]byte, error) {
	if strings.ContainsAny(node, "/") {
		return nil, fmt.Errorf("node %q: not a sandbox node name", node)
	}
	return httpGet(ctx, nsPath(node), url)
}

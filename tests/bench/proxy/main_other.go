//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "proxy bench: needs Linux (network namespaces) and root")
	os.Exit(1)
}

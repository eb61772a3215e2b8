// Command weftctl is Weft's command-line tool.
package main

import (
	"os"

	"github.com/weftmesh/weft/weftctl/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }

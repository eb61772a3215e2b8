// Package cli implements weftctl's commands.
package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Main runs weftctl with args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "weftctl:", err)
		return 1
	}
	return 0
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "weftctl",
		Short:         "Operate the Weft service mesh",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newCertsCmd(), newSandboxCmd(), newEnrollCmd(), newUnenrollCmd(), newCanaryCmd(), newCheckCmd(),
		newStatusCmd(), newProxyConfigCmd(), newIdentityCmd())
	return root
}

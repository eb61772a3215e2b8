// Command pause is the sandbox ("pause") image of the test cluster: it holds a
// pod's namespaces open and does nothing until SIGTERM or SIGINT. It is a
// static Go program so that the image can be built here without a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

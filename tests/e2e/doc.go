// Package e2e holds the end-to-end tests of the mesh in the one-machine
// sandbox (tests/sandbox). They need root on Linux.
package e2e

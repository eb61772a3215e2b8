//go:build !linux

package kube

import (
	"os/exec"
	"time"
)

const supported = false

type process struct {
	name string
	pid  int
	done chan struct{}
	err  error
}

func startProcess(name string, cmd *exec.Cmd) (*process, error) { return nil, ErrUnsupportedPlatform }

func (p *process) exited() bool { return true }

func (p *process) stop(time.Duration) error { return nil }

func killGroupOnCancel(*exec.Cmd) {}

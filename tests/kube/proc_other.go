//go:build !linux

package kube

import (
	"os/exec"
	"time"
)

const supported = false

type process struct {
	Name string
	PID  int
}

func startProcess(name string, cmd *exec.Cmd) (*process, error) { return nil, ErrUnsupportedPlatform }

func (p *process) Exited() bool { return true }

func (p *process) Err() error { return nil }

func (p *process) Stop(time.Duration) error { return nil }

func killGroupOnCancel(*exec.Cmd) {}

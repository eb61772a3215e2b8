package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// state is what the state file records, so that Cleanup can undo a run that
// crashed.
type state struct {
	Name       string   `json:"name"`
	Namespaces []string `json:"namespaces"`
	// HostsFiles are the files WriteHosts wrote.
	HostsFiles []string       `json:"hostsFiles,omitempty"`
	Processes  []stateProcess `json:"processes,omitempty"`
}

// stateProcess is a started process: Cleanup kills PID only if
// /proc/PID/cmdline still reads Argv.
type stateProcess struct {
	PID  int      `json:"pid"`
	Argv []string `json:"argv"`
}

func statePath(name string) string { return filepath.Join(StateDir, name+".json") }

// dirPath is the scratch directory of sandbox name; see [Sandbox.Dir].
func dirPath(name string) string { return filepath.Join(StateDir, name) }

func writeState(st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return fmt.Errorf("write sandbox state: %w", err)
	}
	path := statePath(st.Name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write sandbox state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write sandbox state: %w", err)
	}
	return nil
}

// readState returns the recorded state of sandbox name, or nil if there is
// none.
func readState(name string) (*state, error) {
	b, err := os.ReadFile(statePath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sandbox state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read sandbox state %s: %w", statePath(name), err)
	}
	return &st, nil
}

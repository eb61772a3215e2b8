package enroll

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Store remembers enrolled pods on disk so that a restarted node proxy can
// re-adopt them (see the package doc): one file per pod, Dir/<uid>.json,
// holding the pod's uid, namespace, name and netnsPath. Files are replaced
// atomically (write to a temporary file, fsync, rename), so a crash leaves
// either the old record or the new one. A Store is safe for concurrent use
// as long as no two calls name the same pod at once.
type Store struct {
	// Dir holds the records; it is created (0700) on the first Save.
	Dir string
}

const recordExt = ".json"

// Save records pod (its NetNS is not stored), replacing an earlier record
// with the same UID.
func (s Store) Save(pod Pod) error {
	if err := validatePod(pod); err != nil {
		return fmt.Errorf("save pod: %w", err)
	}
	pod.NetNS = nil
	b, err := json.MarshalIndent(pod, "", "  ")
	if err != nil {
		return fmt.Errorf("save pod %s: %w", pod.Ref(), err)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("save pod %s: %w", pod.Ref(), err)
	}
	f, err := os.CreateTemp(s.Dir, ".pod-*.tmp")
	if err != nil {
		return fmt.Errorf("save pod %s: %w", pod.Ref(), err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.Dir, pod.UID+recordExt))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save pod %s: %w", pod.Ref(), err)
	}
	return nil
}

// Delete removes the record of the pod with this UID. A missing record is
// not an error.
func (s Store) Delete(uid string) error {
	if err := ValidUID(uid); err != nil {
		return fmt.Errorf("delete pod: %w", err)
	}
	err := os.Remove(filepath.Join(s.Dir, uid+recordExt))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete pod %s: %w", uid, err)
	}
	return nil
}

// List returns the recorded pods, sorted by UID, with NetNS nil. A missing
// Dir is an empty list. Records that cannot be read or are invalid are left
// out and reported together in the error, alongside the valid ones, so that
// one bad file does not stop re-adoption of the others.
func (s Store) List() ([]Pod, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var pods []Pod
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, recordExt) || !e.Type().IsRegular() {
			continue
		}
		pod, err := s.read(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pods = append(pods, pod)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].UID < pods[j].UID })
	return pods, errors.Join(errs...)
}

func (s Store) read(name string) (Pod, error) {
	path := filepath.Join(s.Dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return Pod{}, fmt.Errorf("pod record %s: %w", path, err)
	}
	var pod Pod
	if err := json.Unmarshal(b, &pod); err != nil {
		return Pod{}, fmt.Errorf("pod record %s: %w", path, err)
	}
	if err := validatePod(pod); err != nil {
		return Pod{}, fmt.Errorf("pod record %s: %w", path, err)
	}
	if pod.UID+recordExt != name {
		return Pod{}, fmt.Errorf("pod record %s: holds uid %s", path, pod.UID)
	}
	return pod, nil
}

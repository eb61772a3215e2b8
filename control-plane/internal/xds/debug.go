package xds

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"
)

// ErrNoSnapshot means the node has no snapshot: it is not connected, or
// none of its builds succeeded yet.
var ErrNoSnapshot = errors.New("no xDS snapshot")

// Debug returns the snapshot node currently has, as indented JSON:
//
//	{"node": ..., "version": ...,
//	 "types": {TYPE_URL: {"version": ..., "resources": {NAME: RESOURCE}}}}
//
// with each resource in its protobuf JSON form.
func (s *Server) Debug(node string) ([]byte, error) {
	rs, err := s.cache.GetSnapshot(node)
	if err != nil {
		return nil, fmt.Errorf("%w for node %q", ErrNoSnapshot, node)
	}
	snap, ok := rs.(*Snapshot)
	if !ok {
		return nil, fmt.Errorf("node %q: snapshot of type %T", node, rs)
	}
	return snap.debugJSON(node)
}

// DebugHandler serves /debug/config: ?node=NAME returns Debug(NAME) (404
// when the node has no snapshot); without a node it lists the connected
// nodes and each one's synchronisation state (debugNodes).
func (s *Server) DebugHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node := r.URL.Query().Get("node")
		var body []byte
		var err error
		if node == "" {
			body, err = json.MarshalIndent(s.debugNodes(), "", "  ")
		} else {
			body, err = s.Debug(node)
		}
		switch {
		case errors.Is(err, ErrNoSnapshot):
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(body, '\n'))
	})
}

type debugSnapshot struct {
	Node    string               `json:"node"`
	Version string               `json:"version"`
	Types   map[string]debugType `json:"types"`
}

type debugType struct {
	Version   string                     `json:"version"`
	Resources map[string]json.RawMessage `json:"resources"`
}

func (s *Snapshot) debugJSON(node string) ([]byte, error) {
	out := debugSnapshot{Node: node, Version: s.version, Types: make(map[string]debugType, len(s.sets))}
	for typeURL, set := range s.sets {
		t := debugType{Version: set.version, Resources: make(map[string]json.RawMessage, len(set.items))}
		for name, r := range set.items {
			b, err := protojson.Marshal(r.Resource)
			if err != nil {
				// An Any inside whose type is not linked into this binary.
				b, _ = json.Marshal(map[string]string{"error": err.Error()})
			}
			t.Resources[name] = b
		}
		out.Types[typeURL] = t
	}
	return json.MarshalIndent(out, "", "  ")
}

// debugNodes is /debug/config without a node: the connected nodes and,
// for each, its synchronisation state (NodeSync with its Status).
type debugNodes struct {
	Connected []string                 `json:"connected"`
	Nodes     map[string]debugNodeSync `json:"nodes"`
}

type debugNodeSync struct {
	Status string `json:"status"`
	NodeSync
}

func (s *Server) debugNodes() debugNodes {
	out := debugNodes{Connected: s.Connected(), Nodes: map[string]debugNodeSync{}}
	if out.Connected == nil {
		out.Connected = []string{}
	}
	for node, n := range s.Sync() {
		out.Nodes[node] = debugNodeSync{Status: n.Status(), NodeSync: n}
	}
	return out
}

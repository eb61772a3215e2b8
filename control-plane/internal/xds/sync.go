package xds

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// TypeSync is what one stream was last sent of one resource type and what
// its client answered: the basis of `weftctl status`'s SYNCED / STALE /
// NACKED column. Versions are the server's per-type versions
// (system_version_info on delta responses, version_info on
// state-of-the-world ones).
type TypeSync struct {
	Sent    string    `json:"sent"`              // version of the last response
	SentAt  time.Time `json:"sentAt"`            // when it went out
	Acked   string    `json:"acked,omitempty"`   // last version the client accepted
	Nacked  string    `json:"nacked,omitempty"`  // version of the last response the client rejected, if after the last ACK
	NackErr string    `json:"nackErr,omitempty"` // the client's reason for that rejection
	pending string    // nonce of the response awaiting an answer
}

// StreamSync is one accepted stream's view of its node's configuration.
type StreamSync struct {
	Protocol string               `json:"protocol"` // "delta" or "sotw"
	Types    map[string]*TypeSync `json:"types"`    // by type URL
}

// NodeSync is a connected node: the version of the snapshot the server
// holds for it and, per stream, what was sent and answered.
type NodeSync struct {
	Snapshot string       `json:"snapshot,omitempty"`
	Streams  []StreamSync `json:"streams"`
}

// Status reports whether every type of every stream has acknowledged the
// latest response it was sent: "SYNCED"; "NACKED" when the client
// rejected the last response of some type; "STALE" when a response awaits
// its answer (normal for a moment after a change).
func (n NodeSync) Status() string {
	out := "SYNCED"
	for _, st := range n.Streams {
		for _, t := range st.Types {
			switch {
			case t.Nacked != "":
				return "NACKED"
			case t.pending != "" || t.Acked != t.Sent:
				out = "STALE"
			}
		}
	}
	return out
}

// sent records a response of typeURL with version and nonce on stream key.
func (s *Server) sent(key streamKey, typeURL, version, nonce string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[key]
	if st == nil {
		return
	}
	if st.sync == nil {
		st.sync = map[string]*TypeSync{}
	}
	t := st.sync[typeURL]
	if t == nil {
		t = &TypeSync{}
		st.sync[typeURL] = t
	}
	t.Sent, t.SentAt, t.pending = version, time.Now(), nonce
}

// answered records a client's answer to the response with nonce: an ACK,
// or a NACK with nackErr. Answers to older responses are ignored.
func (s *Server) answered(key streamKey, typeURL, nonce string, nack bool, nackErr string) {
	if nonce == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[key]
	if st == nil || st.sync == nil {
		return
	}
	t := st.sync[typeURL]
	if t == nil || t.pending != nonce {
		return
	}
	t.pending = ""
	if nack {
		t.Nacked, t.NackErr = t.Sent, nackErr
		return
	}
	t.Acked, t.Nacked, t.NackErr = t.Sent, "", ""
}

// Sync reports every connected node's synchronisation state, by node.
func (s *Server) Sync() map[string]NodeSync {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]NodeSync{}
	keys := slices.SortedFunc(maps.Keys(s.streams), func(a, b streamKey) int {
		if a.protocol != b.protocol {
			if a.protocol < b.protocol {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, k := range keys {
		st := s.streams[k]
		if !st.accepted {
			continue
		}
		n := out[st.node]
		if snap := s.published[st.node]; snap != nil {
			n.Snapshot = snap.version
		}
		ss := StreamSync{Protocol: k.protocol, Types: map[string]*TypeSync{}}
		for url, t := range st.sync {
			c := *t
			ss.Types[url] = &c
		}
		n.Streams = append(n.Streams, ss)
		out[st.node] = n
	}
	return out
}

package xds

import (
	"maps"
	"sync"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// setCache reuses work across nodes. The translator hands every node the
// same slices for the resources all nodes share (listeners, routes,
// clusters, endpoints): a resource set (names, per-resource versions, which
// needs a deterministic marshal of every resource) is therefore built once
// per slice instead of once per node, and the snapshots of all nodes point
// at the same sets, which also keeps memory flat as nodes are added. The
// consistency of the four Envoy types is likewise checked once per
// combination of sets (reading each listener's references, which sit in
// Anys, once per message), and what changed from one set to the next (what a
// delta stream holding the first is sent) is computed once per pair.
//
// Resources themselves are recognised too, by identity: the translator
// hands out the same message for a resource whose inputs did not change,
// and its serialized form and version are then taken from the set that
// first had it rather than computed again. go-control-plane's contract
// already is that resources are not modified once handed over.
//
// A slice is recognised by the address of its first element and its
// length. Each entry keeps its slice alive, so that address cannot be
// reused by another slice while the entry exists. Entries live for two
// generations: rotate starts a new one at each round of pushes, and an entry
// used in the current or previous generation survives. Concurrent callers
// asking for the same entry wait for one computation.
type setCache struct {
	mu              sync.Mutex // guards the fields below
	cur, prev       map[setKey]*cachedSet
	checked         map[[4]*resourceSet]error
	oldCheck        map[[4]*resourceSet]error
	diffs, oldDiffs map[diffKey]*setDiff
	encoded, oldEnc map[types.Resource]encoded
	refs, oldRefs   map[*listenerv3.Listener]listenerRefs
}

type setKey struct {
	typeURL string
	first   *types.Resource
	n       int
}

type cachedSet struct {
	list []types.Resource // pins the backing array: see setCache
	once sync.Once
	set  *resourceSet
	err  error
}

// diffKey is a pair of sets: what a client holds (nil: nothing) and what
// it should hold.
type diffKey struct{ from, to *resourceSet }

// setDiff is what changes from one set to another: the resources to send
// (shared by every stream it is sent on; read-only) and the names removed,
// both sorted by name.
type setDiff struct {
	once      sync.Once
	resources []*discoverygrpc.Resource
	removed   []string
}

func newSetCache() *setCache {
	return &setCache{cur: map[setKey]*cachedSet{}, prev: map[setKey]*cachedSet{},
		checked: map[[4]*resourceSet]error{}, oldCheck: map[[4]*resourceSet]error{},
		diffs: map[diffKey]*setDiff{}, oldDiffs: map[diffKey]*setDiff{},
		encoded: map[types.Resource]encoded{}, oldEnc: map[types.Resource]encoded{},
		refs: map[*listenerv3.Listener]listenerRefs{}, oldRefs: map[*listenerv3.Listener]listenerRefs{}}
}

// rotate starts a new generation.
func (c *setCache) rotate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prev, c.cur = c.cur, map[setKey]*cachedSet{}
	c.oldCheck, c.checked = c.checked, map[[4]*resourceSet]error{}
	c.oldDiffs, c.diffs = c.diffs, map[diffKey]*setDiff{}
	c.oldEnc, c.encoded = c.encoded, map[types.Resource]encoded{}
	c.oldRefs, c.refs = c.refs, map[*listenerv3.Listener]listenerRefs{}
}

// set returns the resource set of list, building it if this slice was not
// seen in this or the previous generation.
func (c *setCache) set(typeURL string, list []types.Resource) (*resourceSet, error) {
	if c == nil || len(list) == 0 {
		return newResourceSet(typeURL, list, c)
	}
	key := setKey{typeURL: typeURL, first: &list[0], n: len(list)}
	c.mu.Lock()
	e, ok := c.cur[key]
	if !ok {
		if e, ok = c.prev[key]; !ok {
			e = &cachedSet{list: list}
		}
		c.cur[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.set, e.err = newResourceSet(typeURL, list, c) })
	return e.set, e.err
}

// consistent checks s, reusing the result for a snapshot with the same
// Envoy sets.
func (c *setCache) consistent(s *Snapshot) error {
	if c == nil {
		return s.Consistent()
	}
	key := [4]*resourceSet{s.sets[resourcev3.ListenerType], s.sets[resourcev3.RouteType],
		s.sets[resourcev3.ClusterType], s.sets[resourcev3.EndpointType]}
	c.mu.Lock()
	err, ok := c.checked[key]
	if !ok {
		if err, ok = c.oldCheck[key]; ok {
			c.checked[key] = err
		}
	}
	c.mu.Unlock()
	if ok {
		return err
	}
	err = s.consistent(c)
	c.mu.Lock()
	c.checked[key] = err
	c.mu.Unlock()
	return err
}

// diff returns what changes from set from (nil: nothing held) to set to.
func (c *setCache) diff(from, to *resourceSet) *setDiff {
	key := diffKey{from, to}
	c.mu.Lock()
	d, ok := c.diffs[key]
	if !ok {
		if d, ok = c.oldDiffs[key]; !ok {
			d = &setDiff{}
		}
		c.diffs[key] = d
	}
	c.mu.Unlock()
	d.once.Do(func() {
		var held map[string]string
		if from != nil {
			held = from.versions
		}
		d.resources, d.removed = changes(held, to, nil)
	})
	return d
}

// encodedOf returns, by index in list, the resources of list already
// encoded in this or the previous generation.
func (c *setCache) encodedOf(list []types.Resource) map[int]encoded {
	if c == nil {
		return nil
	}
	out := make(map[int]encoded, len(list))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range list {
		e, ok := c.encoded[r]
		if !ok {
			if e, ok = c.oldEnc[r]; !ok {
				continue
			}
			c.encoded[r] = e
		}
		out[i] = e
	}
	return out
}

// addEncoded remembers newly encoded resources.
func (c *setCache) addEncoded(m map[types.Resource]encoded) {
	if c == nil || len(m) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	maps.Copy(c.encoded, m)
}

// listenerRefs returns what l references, read once per message.
func (c *setCache) listenerRefs(l *listenerv3.Listener) listenerRefs {
	if c == nil {
		return readListener(l)
	}
	c.mu.Lock()
	r, ok := c.refs[l]
	if !ok {
		if r, ok = c.oldRefs[l]; ok {
			c.refs[l] = r
		}
	}
	c.mu.Unlock()
	if ok {
		return r
	}
	r = readListener(l)
	c.mu.Lock()
	c.refs[l] = r
	c.mu.Unlock()
	return r
}

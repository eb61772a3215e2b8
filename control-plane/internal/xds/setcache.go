package xds

import (
	"sync"

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
// combination of sets.
//
// A slice is recognised by the address of its first element and its
// length. Each entry keeps its slice alive, so that address cannot be
// reused by another slice while the entry exists. Entries live for two
// generations: rotate starts a new one at each round of pushes, and an entry
// used in the current or previous generation survives.
type setCache struct {
	mu        sync.Mutex // guards the fields below
	cur, prev map[setKey]*cachedSet
	checked   map[[4]*resourceSet]error
	oldCheck  map[[4]*resourceSet]error
}

type setKey struct {
	typeURL string
	first   *types.Resource
	n       int
}

type cachedSet struct {
	list []types.Resource // pins the backing array: see setCache
	set  *resourceSet
}

func newSetCache() *setCache {
	return &setCache{cur: map[setKey]*cachedSet{}, prev: map[setKey]*cachedSet{},
		checked: map[[4]*resourceSet]error{}, oldCheck: map[[4]*resourceSet]error{}}
}

// rotate starts a new generation.
func (c *setCache) rotate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prev, c.cur = c.cur, map[setKey]*cachedSet{}
	c.oldCheck, c.checked = c.checked, map[[4]*resourceSet]error{}
}

// set returns the resource set of list, building it if this slice was not
// seen in this or the previous generation. Short slices (a node's own
// workloads) are not worth caching.
func (c *setCache) set(typeURL string, list []types.Resource) (*resourceSet, error) {
	if c == nil || len(list) < 2 {
		return newResourceSet(typeURL, list)
	}
	key := setKey{typeURL: typeURL, first: &list[0], n: len(list)}
	c.mu.Lock()
	e, ok := c.cur[key]
	if !ok {
		if e, ok = c.prev[key]; ok {
			c.cur[key] = e
		}
	}
	c.mu.Unlock()
	if ok {
		return e.set, nil
	}
	set, err := newResourceSet(typeURL, list)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.cur[key] = &cachedSet{list: list, set: set}
	c.mu.Unlock()
	return set, nil
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
	err = s.Consistent()
	c.mu.Lock()
	c.checked[key] = err
	c.mu.Unlock()
	return err
}

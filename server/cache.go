package server

import (
	"container/list"
	"sync"
	"time"
)

// lru is a size-bounded least-recently-used cache of immutable values. Module versions never
// change once stored, so nothing in it is ever invalidated: it only evicts to stay in bounds.
type lru[V comparable] struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List // front is most recent
	items map[string]*list.Element
}

type lruItem[V comparable] struct {
	key  string
	val  V
	size int64
}

func newLRU[V comparable](maxBytes int64) *lru[V] {
	return &lru[V]{max: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *lru[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruItem[V]).val, true
	}
	var zero V
	return zero, false
}

// add stores val, whose cost is size bytes, in place of what key held; a value bigger than an
// eighth of the cache is not kept, so that one large go.mod cannot flush everything else.
// (Values never change, but what is known of one may grow: a version stored without its zip is
// stored again with it.)
func (c *lru[V]) add(key string, val V, size int64) {
	if size > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.size -= e.Value.(*lruItem[V]).size
		c.ll.Remove(e)
	}
	c.items[key] = c.ll.PushFront(&lruItem[V]{key, val, size})
	c.size += size
	c.evict()
}

// grow adds n bytes to the cost of val, if it is still what key holds and stays within an
// eighth of the cache, as add asks of every value; it reports whether it did.
func (c *lru[V]) grow(key string, val V, n int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return false
	}
	it := e.Value.(*lruItem[V])
	if it.val != val || it.size+n > c.max/8 {
		return false
	}
	it.size += n
	c.size += n
	c.evict()
	return true
}

// evict drops the least recently used values until the cache is within its bound.
func (c *lru[V]) evict() {
	for c.size > c.max {
		old := c.ll.Back()
		it := old.Value.(*lruItem[V])
		c.ll.Remove(old)
		delete(c.items, it.key)
		c.size -= it.size
	}
}

// ttl caches answers for a short time: upstream answers to mutable queries (@v/list,
// @latest, a branch's .info), so that a burst of clients costs the upstream one request, and
// final failures of fetches (not found, invalid), so that a flood of requests for a version
// that does not exist costs one fetch.
type ttl[V any] struct {
	mu      sync.Mutex
	life    time.Duration
	entries map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	val     V
	expires time.Time
}

// maxTTLEntries bounds a ttl cache; past it, expired entries go, and if that is not enough,
// everything goes (it only holds answers that expire within minutes anyway).
const maxTTLEntries = 10000

func newTTL[V any](life time.Duration) *ttl[V] {
	return &ttl[V]{life: life, entries: map[string]ttlEntry[V]{}}
}

func (c *ttl[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || time.Now().After(e.expires) {
		var zero V
		return zero, false
	}
	return e.val, true
}

func (c *ttl[V]) put(key string, val V) {
	if c.life <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.entries) >= maxTTLEntries {
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxTTLEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = ttlEntry[V]{val, now.Add(c.life)}
}

package schema

import (
	"sync"
	"unsafe"
)

// slicePool is a memory.Allocator that keeps the buffers given back to it
// (Free) for its next Allocate. An EventColumns' batches take their
// columns from one: once the table has written a batch and the record is
// released (the arrays' refcounts reach zero and their buffers are
// freed), the next batch reuses that memory instead of allocating,
// zeroing and later collecting the columns of every batch anew.
//
// Unlike Arrow's allocators it does not zero what it returns: its users
// overwrite every byte they use. It hands out 8-byte aligned memory, so a
// buffer may hold any of the columns' types.
type slicePool struct {
	mu   sync.Mutex
	free [][]byte // full capacity; at most maxPooled
}

// maxPooled bounds the buffers a slicePool keeps: a batch has about 20.
const maxPooled = 64

// Allocate returns size bytes: the smallest free buffer that holds them
// without wasting more than half, or new memory.
func (p *slicePool) Allocate(size int) []byte {
	p.mu.Lock()
	best := -1
	for i, b := range p.free {
		if c := cap(b); c >= size && c <= 2*size+64 && (best < 0 || c < cap(p.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := p.free[best]
		last := len(p.free) - 1
		p.free[best], p.free[last] = p.free[last], nil
		p.free = p.free[:last]
		p.mu.Unlock()
		return b[:size]
	}
	p.mu.Unlock()
	words := make([]uint64, (size+7)/8) // 8-byte aligned
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(words)*8)[:size]
}

// Reallocate returns size bytes holding b's first bytes, and frees b.
func (p *slicePool) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		return b[:size]
	}
	out := p.Allocate(size)
	copy(out, b)
	p.Free(b)
	return out
}

// Free keeps b for a later Allocate. Buffers too small to matter, or not
// 8-byte aligned (Go's own small allocations of bytes need not be), are
// left to the garbage collector.
func (p *slicePool) Free(b []byte) {
	if cap(b) < 4096 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%8 != 0 {
		return
	}
	p.mu.Lock()
	if len(p.free) < maxPooled {
		p.free = append(p.free, b[:cap(b)])
	}
	p.mu.Unlock()
}

// poolSlice returns an empty slice of T with room for n elements, in the
// pool's memory when p is set, else in new memory.
func poolSlice[T any](p *slicePool, n int) []T {
	if p == nil {
		return make([]T, 0, n)
	}
	size := int(unsafe.Sizeof(*new(T)))
	b := p.Allocate(n * size)
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)[:0]
}

// sliceBytes returns s's elements as bytes, with s's capacity (so that a
// pool that gets them back keeps the whole buffer).
func sliceBytes[T any](s []T) []byte {
	if cap(s) == 0 {
		return nil
	}
	size := int(unsafe.Sizeof(*new(T)))
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), cap(s)*size)[:len(s)*size]
}

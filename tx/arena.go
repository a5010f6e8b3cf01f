package tx

// arena holds copies of the keys and values a write transaction puts, in
// chunks that double from small to arenaChunk, so that a put costs no
// allocation of its own and a small transaction does not pay for a large
// chunk.
type arena struct {
	chunk []byte
	next  int // size of the next chunk
}

const (
	arenaFirst = 512
	arenaChunk = 64 << 10
)

// clone copies b. A nil b stays nil and an empty one stays empty: a value
// put as nil reads back as nil until the commit, as in bbolt (a committed
// empty value reads back as an empty, non-nil slice).
func (a *arena) clone(b []byte) []byte {
	if len(b) == 0 {
		if b == nil {
			return nil
		}
		return []byte{}
	}
	if len(b) > arenaChunk/4 {
		return append([]byte(nil), b...)
	}
	if cap(a.chunk)-len(a.chunk) < len(b) {
		if a.next < arenaFirst {
			a.next = arenaFirst
		}
		for a.next < len(b) {
			a.next *= 2
		}
		a.chunk = make([]byte, 0, a.next)
		if a.next < arenaChunk {
			a.next *= 2
		}
	}
	n := len(a.chunk)
	a.chunk = append(a.chunk, b...)
	return a.chunk[n : n+len(b) : n+len(b)]
}

// reset forgets the chunk: slices handed out may still be referenced.
func (a *arena) reset() { *a = arena{} }

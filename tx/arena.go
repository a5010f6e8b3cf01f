package tx

// arena holds copies of the keys and values a write transaction puts, in
// large chunks, so that a put costs no allocation of its own.
type arena struct {
	chunk []byte
}

const arenaChunk = 64 << 10

func (a *arena) clone(b []byte) []byte {
	if len(b) == 0 {
		return []byte{} // empty, but not nil: Get tells it from a missing key
	}
	if len(b) > arenaChunk/4 {
		return append([]byte(nil), b...)
	}
	if cap(a.chunk)-len(a.chunk) < len(b) {
		a.chunk = make([]byte, 0, arenaChunk)
	}
	n := len(a.chunk)
	a.chunk = append(a.chunk, b...)
	return a.chunk[n : n+len(b) : n+len(b)]
}

// reset forgets the chunk: slices handed out may still be referenced.
func (a *arena) reset() { a.chunk = nil }

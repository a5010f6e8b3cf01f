package page

import (
	"errors"
	"fmt"
)

// ErrCorrupt is the category of every error that reports damaged bytes in a
// file. Match it with errors.Is; errors.As with *CorruptionError gives the
// page.
var ErrCorrupt = errors.New("quiver: database file is corrupt")

// CorruptionError reports a damaged page.
type CorruptionError struct {
	Pgid   Pgid
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("quiver: corrupt page %d: %s", e.Pgid, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

// Corruptf returns a *CorruptionError for page id.
func Corruptf(id Pgid, format string, args ...any) error {
	return &CorruptionError{Pgid: id, Reason: fmt.Sprintf(format, args...)}
}

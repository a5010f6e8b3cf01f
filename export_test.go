package quiver

// SetMinReservation lowers the least mapping size so that tests exercise
// remapping (new epochs) with small files. It returns a function that
// restores the default.
func SetMinReservation(n int) (restore func()) {
	old := minReservation
	minReservation = n
	return func() { minReservation = old }
}

// SetCompactLimits sets the number of changes under which a catch-up round
// is quiet and the most the final round may have to apply (see
// roundsDone). It returns a function that restores the defaults.
func SetCompactLimits(quiet, final int) (restore func()) {
	q, f := compactQuietChanges, compactMaxFinalChanges
	compactQuietChanges, compactMaxFinalChanges = quiet, final
	return func() { compactQuietChanges, compactMaxFinalChanges = q, f }
}

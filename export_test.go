package quiver

// SetMinReservation lowers the least mapping size so that tests exercise
// remapping (new epochs) with small files. It returns a function that
// restores the default.
func SetMinReservation(n int) (restore func()) {
	old := minReservation
	minReservation = n
	return func() { minReservation = old }
}

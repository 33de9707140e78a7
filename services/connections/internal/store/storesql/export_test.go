package storesql

// SetNameWindow sets how many of the newest rows a name search looks through
// first, for tests that cross the window with a few rows; it returns the
// function that restores it.
func SetNameWindow(n int) (restore func()) {
	old := nameWindow
	nameWindow = n
	return func() { nameWindow = old }
}

package routes

// RecordedMac is the Mac of bsdrecorded_test.go behind the XNU model, for
// tests outside the package (doctor on macOS): healthy, or after the
// Tunnelblick force-quit with utun3 gone (and its routes with it, as XNU
// does) or still there but down.
func RecordedMac(forceQuit, utunAlive bool) System {
	return newBSDSystem(recordedMac(forceQuit, utunAlive))
}

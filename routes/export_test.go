package routes

// RecordedMac is the Mac of bsdrecorded_test.go behind the XNU model, for
// tests outside the package (doctor on macOS): healthy, or after the
// Tunnelblick force-quit with utun3 gone or still there but down.
func RecordedMac(forceQuit, utunAlive bool) System {
	ifs, addrs := macInterfaces(utunAlive)
	dump := macHealthyDump()
	if forceQuit {
		dump = append(dump, tunnelblickLeftovers()...)
	}
	return newBSDSystem(newXNU(ifs, addrs, dump))
}

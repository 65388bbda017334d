package api

// ValidDeviceID reports whether s can name a device: 1-64 letters, digits,
// '-' or '_' (the client makes one, the gateway refuses anything else).
func ValidDeviceID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

package dex

// User is a lab identity. Passwords are public test values; the hashes are
// bcrypt (cost 10) of them, generated once.
type User struct {
	Name     string
	Email    string
	Password string
	ID       string // Dex userID: stable, so the token subject is too
	Hash     string
	Groups   []string
}

// The lab's users. Engineering may reach vpc-a, ops vpc-b (docs/ARCHITECTURE.md);
// alice is also in dba (access rules by group), dave is in no group the
// gateway knows, erin in both.
var users = []User{
	{"alice", "alice@example.com", "alice-password", "9b2f7c2e-0a51-4d8e-9c1a-7a1e3f0c0001", "$2a$10$UpY6oB8hpZktXTBV3w3NV.GkGR9zj/gbHnyne/vPRHOtx2O5zg5x2", []string{"engineering", "dba"}},
	{"bob", "bob@example.com", "bob-password", "9b2f7c2e-0a51-4d8e-9c1a-7a1e3f0c0002", "$2a$10$Y3JJtbMWfeRxxXCO26A6tekk/ybxGntG7gMknYwvYfTc5UEjG4Qc.", []string{"engineering"}},
	{"carol", "carol@example.com", "carol-password", "9b2f7c2e-0a51-4d8e-9c1a-7a1e3f0c0003", "$2a$10$EGQxalekrtr1upGh35V1RuVswMPs.cMo7ITDC0KenqFIs6aRqITqi", []string{"ops"}},
	{"dave", "dave@example.com", "dave-password", "9b2f7c2e-0a51-4d8e-9c1a-7a1e3f0c0004", "$2a$10$qY1DuNUEE3luRbiJ7taFCeTAtR5lWjWz8w2UUKYg8LtF3uP4rRo7G", nil},
	{"erin", "erin@example.com", "erin-password", "9b2f7c2e-0a51-4d8e-9c1a-7a1e3f0c0005", "$2a$10$9CcJNw.UqbLGkT7gYNmYQOnn/wNIlF4VsD8qql7jjkl7dz19ZQ.wW", []string{"engineering", "ops"}},
}

// Users returns the lab's users.
func Users() []User { return append([]User(nil), users...) }

// LookupUser returns the lab user called name.
func LookupUser(name string) (User, bool) {
	for _, u := range users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

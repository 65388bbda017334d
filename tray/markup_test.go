package tray

import "testing"

func TestEscapeMarkup(t *testing.T) {
	in := `network <a href="https://evil.example">click</a> & <img src=x>`
	want := `network &lt;a href="https://evil.example"&gt;click&lt;/a&gt; &amp; &lt;img src=x&gt;`
	if got := EscapeMarkup(in); got != want {
		t.Fatalf("EscapeMarkup = %q, want %q", got, want)
	}
}

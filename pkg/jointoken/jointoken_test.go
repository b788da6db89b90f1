package jointoken

import "testing"

func TestRoundTrip(t *testing.T) {
	tok := Format([]byte("ca"), "s3cret")
	hash, secret, err := Parse(tok)
	if err != nil || hash != CAHash([]byte("ca")) || secret != "s3cret" {
		t.Fatalf("Parse(%q) = %q %q %v", tok, hash, secret, err)
	}
	if hash, secret, err := Parse("plain"); err != nil || hash != "" || secret != "plain" {
		t.Fatalf("bare secret: %q %q %v", hash, secret, err)
	}
	if _, _, err := Parse("K10abc::server:x"); err == nil {
		t.Fatal("short hash accepted")
	}
}

//go:build linux

package sshserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// fuzzKeyLines are authorized_keys lines of fixed keys, so that the seeds
// and the committed corpus stay valid across runs.
var fuzzKeyLines = func() []string {
	ed25519Key, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err)
	}

	// A fixed point on P-256: the generator, which is a valid public key.
	curve := elliptic.P256()
	ecdsaKey, err := ssh.NewPublicKey(&ecdsa.PublicKey{Curve: curve, X: curve.Params().Gx, Y: curve.Params().Gy})
	if err != nil {
		panic(err)
	}

	// ssh.ParsePublicKey checks only the modulus size and the exponent, so
	// a product of two fixed odd numbers is a parsable modulus.
	p, _ := new(big.Int).SetString("d3f1e0a5b5b1c1a9c3f9f1f3d5a5f9e1d3b5c7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9", 16)
	q, _ := new(big.Int).SetString("c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7", 16)
	rsaKey, err := ssh.NewPublicKey(&rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537})
	if err != nil {
		panic(err)
	}

	lines := make([]string, 0, 3)
	for _, key := range []ssh.PublicKey{ed25519Key, ecdsaKey, rsaKey} {
		lines = append(lines, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
	}
	return lines
}()

// authorizedKeysSeeds returns realistic entries: keys as users paste them,
// with and without comments and whitespace, and entries that must be
// rejected.
func authorizedKeysSeeds() []string {
	ed25519Line, ecdsaLine, rsaLine := fuzzKeyLines[0], fuzzKeyLines[1], fuzzKeyLines[2]
	ed25519Data := strings.Fields(ed25519Line)[1]
	decoded, err := base64.StdEncoding.DecodeString(ed25519Data)
	if err != nil {
		panic(err)
	}
	truncated := base64.StdEncoding.EncodeToString(decoded[:len(decoded)/2])

	return []string{
		ed25519Line,
		ed25519Line + " alice@laptop",
		ed25519Line + "\n",
		ed25519Line + "\r\n",
		"  " + ecdsaLine + "  ",
		"\t" + rsaLine + " ci key with spaces",
		"# deploy key\n" + ed25519Line,
		"",
		" \t\n",
		"not a key at all",
		"# just a comment",
		"ssh-ed25519",
		"ssh-ed25519 !!!notbase64!!!",
		"ssh-ed25519 " + truncated + " cut@short",
		"ssh-rsa AAAA",
		"ssh-rsa " + ed25519Data,
		"restrict " + ed25519Data,
		`from="10.0.0.1" ` + ed25519Line,
		`command="/bin/true",no-pty ` + ed25519Line,
		`restrict ` + ed25519Line,
		`from="10.0.0.1" ` + ed25519Data,
		ed25519Line + "\n" + ecdsaLine,
		ed25519Line + "\r" + ecdsaLine,
		"garbage\n" + ed25519Line,
		"ssh-ed25519-cert-v01@openssh.com " + ed25519Data,
		strings.Repeat("\u00e9", 30) + " " + ed25519Data,
	}
}

// checkRoundTrip fails t unless key survives ssh.MarshalAuthorizedKey and
// ssh.ParseAuthorizedKey unchanged and without options.
func checkRoundTrip(t *testing.T, entry string, key ssh.PublicKey) {
	t.Helper()

	line := ssh.MarshalAuthorizedKey(key)
	again, _, options, rest, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatalf("entry %q: the marshalled key %q does not parse: %v", entry, line, err)
	}
	if len(options) != 0 || len(rest) != 0 {
		t.Fatalf("entry %q: the marshalled key %q parses with options %q and rest %q", entry, line, options, rest)
	}
	if !bytes.Equal(again.Marshal(), key.Marshal()) {
		t.Fatalf("entry %q: the marshalled key %q parses to a different key", entry, line)
	}
	if !bytes.Equal(ssh.MarshalAuthorizedKey(again), line) {
		t.Fatalf("entry %q: marshalling the parsed key again gives %q, want %q", entry, ssh.MarshalAuthorizedKey(again), line)
	}
}

// checkEntryError fails t unless message starts with
// "authorized_keys[<index>] " and a quoted prefix of the entry of at most
// maxQuotedEntryLength bytes.
func checkEntryError(t *testing.T, message string, index int, entry string) {
	t.Helper()

	prefix := fmt.Sprintf("authorized_keys[%d] ", index)
	rest, ok := strings.CutPrefix(message, prefix)
	if !ok {
		t.Fatalf("entry %q: error %q does not start with %q", entry, message, prefix)
	}
	quoted, err := strconv.QuotedPrefix(rest)
	if err != nil {
		t.Fatalf("entry %q: error %q does not quote the entry after its index: %v", entry, message, err)
	}
	unquoted, err := strconv.Unquote(quoted)
	if err != nil {
		t.Fatalf("entry %q: error %q has a quoted entry that does not unquote: %v", entry, message, err)
	}
	if len(unquoted) > maxQuotedEntryLength || !strings.HasPrefix(entry, unquoted) {
		t.Fatalf("entry %q: error %q quotes %q, which is not a prefix of at most %d bytes", entry, message, unquoted, maxQuotedEntryLength)
	}
	if len(entry) > maxQuotedEntryLength && !strings.HasPrefix(rest[len(quoted):], "...") {
		t.Fatalf("entry %q: error %q does not mark the quoted entry as cut", entry, message)
	}
}

// firstKeyLine returns the first line of entry that is neither blank nor an
// authorized_keys comment. Like the authorized_keys format, it drops one
// trailing carriage return and trims only spaces and tabs.
func firstKeyLine(entry string) string {
	for _, line := range strings.Split(entry, "\n") {
		line = strings.Trim(strings.TrimSuffix(line, "\r"), " \t")
		if line != "" && line[0] != '#' {
			return line
		}
	}
	return ""
}

// keyLineFields splits an authorized_keys line at runs of spaces and tabs,
// the only field separators of the format.
func keyLineFields(line string) []string {
	return strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
}

// isKeyData reports whether field is the base64 encoding of key.
func isKeyData(field string, key ssh.PublicKey) bool {
	data, err := base64.StdEncoding.DecodeString(field)
	return err == nil && bytes.Equal(data, key.Marshal())
}

// containsKeyData reports whether any field of line is the base64 encoding
// of key.
func containsKeyData(line string, key ssh.PublicKey) bool {
	for _, field := range keyLineFields(line) {
		if isKeyData(field, key) {
			return true
		}
	}
	return false
}

func FuzzParseAuthorizedKeys(f *testing.F) {
	for i, seed := range authorizedKeysSeeds() {
		f.Add(seed, uint8(i))
	}

	f.Fuzz(func(t *testing.T, entry string, position uint8) {
		// The fuzzed entry sits between valid entries, so an error must name
		// its index and no other.
		const entryCount = 4
		index := int(position) % entryCount
		entries := make([]string, entryCount)
		for i := range entries {
			entries[i] = fuzzKeyLines[i%len(fuzzKeyLines)]
		}
		entries[index] = entry

		keys, err := ParseAuthorizedKeys(entries)

		_, _, options, _, parseErr := ssh.ParseAuthorizedKey([]byte(entry))
		if parseErr == nil && len(options) > 0 && err == nil {
			t.Fatalf("entry %q with key options %q was accepted", entry, options)
		}

		if err != nil {
			if keys != nil {
				t.Fatalf("entry %q: ParseAuthorizedKeys returned keys with the error %v", entry, err)
			}
			checkEntryError(t, err.Error(), index, entry)
			return
		}

		if len(keys) != entryCount {
			t.Fatalf("entry %q: ParseAuthorizedKeys returned %d keys for %d entries", entry, len(keys), entryCount)
		}
		key := keys[index]
		checkRoundTrip(t, entry, key)

		// An entry accepted among others is accepted alone, as the same key.
		alone, err := ParseAuthorizedKeys([]string{entry})
		if err != nil || len(alone) != 1 || !bytes.Equal(alone[0].Marshal(), key.Marshal()) {
			t.Fatalf("entry %q: accepted among others, but alone ParseAuthorizedKeys = %v, %v", entry, alone, err)
		}

		// No text in front of the key may be dropped: neither a line before
		// the key line, such as "garbage\n<key>" or a from= option wrapped
		// onto its own line, nor an options field of only commas, such as
		// ", <key>", which x/crypto/ssh parses as no options.
		keyLine := firstKeyLine(entry)
		if !containsKeyData(keyLine, key) {
			t.Fatalf("entry %q: the line %q in front of the key was dropped", entry, keyLine)
		}
		fields := keyLineFields(keyLine)
		if len(fields) >= 3 && strings.Trim(fields[0], ",") == "" && fields[1] == key.Type() {
			t.Fatalf("entry %q: the options field %q of only commas was dropped", entry, fields[0])
		}

		// The entry's key line names the key's own type, so nothing in front
		// of the key data is an option that the parser dropped.
		if len(fields) < 2 || fields[0] != key.Type() || !isKeyData(fields[1], key) {
			t.Fatalf("entry %q was accepted as a %s key, but its key line starts with %q", entry, key.Type(), fields)
		}
	})
}
